//===- Passes.td - passes of the qwen-compile back end -----*- tablegen -*-===//
//
// The passes that turn a lowered model into the shared object a bundle
// carries (include/qwen/Runtime/BundleABI.h is the contract they implement).
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_COMPILER_PASSES
#define QWEN_COMPILER_PASSES

include "mlir/Pass/PassBase.td"

def WeightsToArguments : Pass<"qwen-weights-to-arguments", "::mlir::ModuleOp"> {
  let summary = "Turn every weight reference of the entry function into an argument";
  let description = [{
    A bundle keeps its weights in `weights.bin`, mapped by the runtime and
    passed to the compiled model, so the model code holds no weight data.
    This pass replaces each `qwen.weight @store::@name` in the entry function
    by a new trailing function argument of the same type (one argument per
    distinct weight, in order of first use) carrying

      {qwen.weight = "name", qwen.weight_store = "file.qws"}

    and then erases the `qwen.store` ops. The bundle writer reads those
    attributes to lay out `weights.bin` in argument order. A `qwen.weight`
    outside the entry function, or a quantized weight that has not been lowered
    yet (`qquant.weight`), is an error naming it.
  }];
  let options = [
    Option<"entry", "entry", "std::string", /*default=*/"\"main\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

def Bufferize : Pass<"qwen-bufferize", "::mlir::ModuleOp"> {
  let summary = "One-shot bufferization of the lowered model for code generation";
  let description = [{
    Upstream one-shot module bufferization with the settings the bundle ABI
    needs: function boundaries bufferized with identity layouts (the runtime
    passes plain row-major buffers), and every buffer copy created as
    `linalg.copy` rather than `memref.copy`, so copies lower to loops with the
    rest of the code instead of calling the MLIR C runner library's
    `memrefCopy` (a bundle's model.so depends on no MLIR library).
  }];
  let dependentDialects = [
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::memref::MemRefDialect",
  ];
}

def EmitModelABI : Pass<"qwen-emit-model-abi", "::mlir::ModuleOp"> {
  let summary = "Add the bundle ABI's exported functions to an LLVM-dialect module";
  let description = [{
    Runs after the module is in the LLVM dialect. Given the entry function
    `@<entry>` and its C interface wrapper `@_mlir_ciface_<entry>` (the
    entry must carry `llvm.emit_c_interface` before func-to-llvm), adds

      i64  qwen_model_abi_version()            returns the ABI version (1)
      void qwen_model_set_num_threads(i32)     calls omp_set_num_threads
                                               (a no-op with openmp=false)
      void qwen_model_forward(ptr args)        args[i] -> input descriptor i,
                                               args[n] -> output descriptors

    as described in include/qwen/Runtime/BundleABI.h. `num-inputs` is the
    number of entry arguments; a mismatch with the wrapper is an error.
  }];
  let options = [
    Option<"entry", "entry", "std::string", /*default=*/"\"qwen_model_main\"",
           "Name of the entry function (before the C interface prefix)">,
    Option<"numInputs", "num-inputs", "int64_t", /*default=*/"-1",
           "Number of entry arguments (-1: take it from the wrapper)">,
    Option<"openmp", "openmp", "bool", /*default=*/"true",
           "qwen_model_set_num_threads calls omp_set_num_threads (false: a "
           "no-op, for CUDA bundles, which run no OpenMP)">,
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def OmpSchedule : Pass<"qwen-omp-schedule", "::mlir::ModuleOp"> {
  let summary = "Set the schedule of every omp.wsloop (after convert-scf-to-openmp)";
  let description = [{
    convert-scf-to-openmp emits worksharing loops without a schedule clause,
    i.e. static: each thread gets an equal share of the iterations decided
    up front, and the region's closing barrier waits for the slowest thread.
    The kernels' parallel loops are tiles of output channels of similar cost,
    so that is ideal on idle cores; when a thread is descheduled (more
    runnable threads than cores) its whole share waits for it. `dynamic`
    hands out `chunk` iterations at a time, so the running threads take the
    share of a stalled one. Loops that already have a schedule are kept.
  }];
  let options = [
    Option<"kind", "kind", "std::string", /*default=*/"\"dynamic\"",
           "static | dynamic | guided">,
    Option<"chunk", "chunk", "int64_t", /*default=*/"1",
           "Iterations handed out at a time (dynamic / guided; 0: the runtime's default)">,
  ];
  let dependentDialects = ["::mlir::omp::OpenMPDialect", "::mlir::arith::ArithDialect"];
}

def PolynomialExp : Pass<"qwen-polynomial-exp", "::mlir::ModuleOp"> {
  let summary = "math.exp on f32 as MLIR's polynomial approximation instead of libm calls";
  let description = [{
    convert-math-to-llvm turns `math.exp` into `llvm.exp`, which LLVM has no
    vector form of on x86 without a vector math library: a vector<16xf32>
    exp becomes 16 calls to libm's `expf`, and the scalar exps of the
    reference generics block loop vectorization. In a 512-token prefill of
    Qwen2.5-0.5B (softmax and SwiGLU) those calls were 5-9 % of the time.
    This pass rewrites every f32 `math.exp` (scalar or vector) with upstream
    MLIR's polynomial approximation (range reduction by ln 2, a polynomial,
    the exponent put back by integer ops): plain arithmetic that stays in
    vector registers. Its error is a few ulp of f32
    (test/Compiler/polynomial-exp.test measures it against float64).
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

#endif // QWEN_COMPILER_PASSES
