//===- EmitModelABI.cpp - the functions a bundle's model.so exports -------===//
//
// --qwen-emit-model-abi: see dialects/Compiler/Passes.td and
// include/qwen/Runtime/BundleABI.h.
//
//===----------------------------------------------------------------------===//

#include "qwen/Compiler/Passes.h"
#include "qwen/Runtime/BundleABI.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"

using namespace mlir;

namespace qwen {
#define GEN_PASS_DEF_EMITMODELABI
#include "Compiler/Passes.h.inc"
} // namespace qwen

namespace {

struct EmitModelABIPass : qwen::impl::EmitModelABIBase<EmitModelABIPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    std::string wrapperName = "_mlir_ciface_" + entry;
    auto entryFn = module.lookupSymbol<LLVM::LLVMFuncOp>(entry);
    auto wrapper = module.lookupSymbol<LLVM::LLVMFuncOp>(wrapperName);
    if (!entryFn || !wrapper) {
      module.emitError() << "no LLVM function @" << entry << " with its C "
                         << "interface @" << wrapperName
                         << " (set llvm.emit_c_interface before func-to-llvm)";
      return signalPassFailure();
    }
    for (StringRef name :
         {QWEN_MODEL_FORWARD_SYMBOL, QWEN_MODEL_ABI_VERSION_SYMBOL,
          QWEN_MODEL_SET_THREADS_SYMBOL}) {
      if (module.lookupSymbol(name)) {
        module.emitError() << "symbol @" << name << " is already defined";
        return signalPassFailure();
      }
    }

    // The wrapper takes a pointer to the results first when the entry has
    // any, then one pointer per argument descriptor.
    LLVM::LLVMFunctionType wt = wrapper.getFunctionType();
    bool hasResults = !isa<LLVM::LLVMVoidType>(
        entryFn.getFunctionType().getReturnType());
    int64_t n = (int64_t)wt.getNumParams() - (hasResults ? 1 : 0);
    if (numInputs >= 0 && n != numInputs) {
      wrapper.emitError() << "C interface takes " << n
                          << " argument descriptors, expected "
                          << static_cast<int64_t>(numInputs);
      return signalPassFailure();
    }
    auto ptrTy = LLVM::LLVMPointerType::get(ctx);
    for (Type t : wt.getParams())
      if (t != ptrTy) {
        wrapper.emitError() << "C interface parameter is not a pointer: " << t;
        return signalPassFailure();
      }

    OpBuilder b(ctx);
    b.setInsertionPointToEnd(module.getBody());
    Location loc = module.getLoc();
    auto i32 = b.getI32Type(), i64 = b.getI64Type();
    auto voidTy = LLVM::LLVMVoidType::get(ctx);

    // i64 qwen_model_abi_version()
    {
      auto fn = LLVM::LLVMFuncOp::create(b, loc, QWEN_MODEL_ABI_VERSION_SYMBOL,
                                         LLVM::LLVMFunctionType::get(i64, {}));
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(fn.addEntryBlock(b));
      Value v = LLVM::ConstantOp::create(
          b, loc, i64, b.getI64IntegerAttr(QWEN_MODEL_ABI_VERSION));
      LLVM::ReturnOp::create(b, loc, ValueRange{v});
    }

    // void qwen_model_set_num_threads(i32) -> omp_set_num_threads, clamped
    // to at least one thread; a no-op without OpenMP (CUDA bundles).
    if (!openmp) {
      auto fn = LLVM::LLVMFuncOp::create(b, loc, QWEN_MODEL_SET_THREADS_SYMBOL,
                                         LLVM::LLVMFunctionType::get(voidTy, {i32}));
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(fn.addEntryBlock(b));
      LLVM::ReturnOp::create(b, loc, ValueRange{});
    } else {
      auto ompTy = LLVM::LLVMFunctionType::get(voidTy, {i32});
      auto omp = module.lookupSymbol<LLVM::LLVMFuncOp>("omp_set_num_threads");
      if (!omp)
        omp = LLVM::LLVMFuncOp::create(b, loc, "omp_set_num_threads", ompTy);
      auto fn = LLVM::LLVMFuncOp::create(b, loc, QWEN_MODEL_SET_THREADS_SYMBOL,
                                         ompTy);
      OpBuilder::InsertionGuard g(b);
      Block *blk = fn.addEntryBlock(b);
      b.setInsertionPointToStart(blk);
      Value one = LLVM::ConstantOp::create(b, loc, i32, b.getI32IntegerAttr(1));
      Value lt = LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::slt,
                                      blk->getArgument(0), one);
      Value nt = LLVM::SelectOp::create(b, loc, lt, one, blk->getArgument(0));
      LLVM::CallOp::create(b, loc, omp, ValueRange{nt});
      LLVM::ReturnOp::create(b, loc, ValueRange{});
    }

    // void qwen_model_forward(ptr args)
    {
      auto fn = LLVM::LLVMFuncOp::create(
          b, loc, QWEN_MODEL_FORWARD_SYMBOL,
          LLVM::LLVMFunctionType::get(voidTy, {ptrTy}));
      OpBuilder::InsertionGuard g(b);
      Block *blk = fn.addEntryBlock(b);
      b.setInsertionPointToStart(blk);
      Value argv = blk->getArgument(0);
      auto slot = [&](int64_t i) -> Value {
        Value p = LLVM::GEPOp::create(b, loc, ptrTy, ptrTy, argv,
                                      ArrayRef<LLVM::GEPArg>{(int32_t)i});
        return LLVM::LoadOp::create(b, loc, ptrTy, p);
      };
      SmallVector<Value> operands;
      if (hasResults)
        operands.push_back(slot(n));
      for (int64_t i = 0; i < n; ++i)
        operands.push_back(slot(i));
      LLVM::CallOp::create(b, loc, wrapper, operands);
      LLVM::ReturnOp::create(b, loc, ValueRange{});
    }
  }
};

} // namespace
