//===- Passes.td - qwen-opt passes --------------------------*- tablegen -*-===//
//
// Every pass of the project, with its options and documentation: `qwen-opt
// --help` and docs/ are generated from this text.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_PASSES
#define QWEN_TRANSFORMS_PASSES

include "mlir/Pass/PassBase.td"

def ExternalizeWeights : Pass<"qwen-externalize-weights", "::mlir::ModuleOp"> {
  let summary = "Move large constants into a weight store and refer to them by name";
  let description = [{
    Every `arith.constant` or `onnx.Constant` with a dense float or integer
    value of at least `min-elements` elements is written to the weight store
    `store` (a new file) and replaced by `qwen.weight @<store-name>::@<entry>`.
    The entry is named after the constant's `NameLoc` when it has one
    (importers give initializers their ONNX names), else `const.<n>`.
    A `qwen.store` op declaring the file is added to the module.

    Example: `qwen-opt --qwen-externalize-weights="store=w.qws min-elements=16"`.
  }];
  let options = [
    Option<"storePath", "store", "std::string", /*default=*/"",
           "Path of the weight-store file to write (required)">,
    Option<"storeName", "store-name", "std::string", /*default=*/"\"weights\"",
           "Symbol name of the qwen.store op to create">,
    Option<"minElements", "min-elements", "int64_t", /*default=*/"1024",
           "Constants with fewer elements stay in the IR">,
  ];
  let dependentDialects = ["::qwen::QwenDialect"];
}

def InternalizeWeights : Pass<"qwen-internalize-weights", "::mlir::ModuleOp"> {
  let summary = "Replace qwen.weight references by constants read from the store";
  let description = [{
    The inverse of `--qwen-externalize-weights`, for debugging and small tests:
    each `qwen.weight` becomes an `arith.constant` holding the store's data.
    Refuses (with an error naming the weight) any weight larger than
    `max-bytes`, so a model is never dumped into IR text by accident.
    `qwen.store` ops left without users are erased.
  }];
  let options = [
    Option<"maxBytes", "max-bytes", "int64_t", /*default=*/"1048576",
           "Largest weight (in bytes) that may be inlined">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def VerifyWeights : Pass<"qwen-verify-weights", "::mlir::ModuleOp"> {
  let summary = "Check every weight reference against its store's index";
  let description = [{
    Opens (memory-maps) each `qwen.store` and checks that every `qwen.weight`
    names an entry with the same shape and element type, and that every
    `qquant.weight` has the components its scheme needs (`.codes`, `.scales`,
    `.zeros`, `.codebook`, `.mask`) with the shapes the scheme implies.
    With `check-finite`, float data is scanned for NaN and Inf.
    Errors name the op, the store file and the entry.
  }];
  let options = [
    Option<"checkFinite", "check-finite", "bool", /*default=*/"false",
           "Scan float weights for NaN/Inf">,
  ];
}

def ONNXInferShapes : Pass<"qwen-onnx-infer-shapes", "::mlir::func::FuncOp"> {
  let summary = "Refine the result types of onnx ops from their operands";
  let description = [{
    Exporters often leave intermediate values untyped or unranked (the
    TorchScript exporter writes no value_info). This pass walks each function
    in order and gives every onnx op the most precise result type its
    operands imply, by the operator's ONNX shape rule. Shape computations
    (`Shape`, `Gather`, `Concat`, `Unsqueeze`, arithmetic on small int64
    tensors) are evaluated symbolically, so `Reshape`/`Expand` targets built
    from them give ranked results with static dims where they are known.
    Types only ever get more precise; a declared type that contradicts the
    rule is an error naming the op. Function result types follow.
  }];
  let dependentDialects = ["::qwen::onnxir::ONNXDialect"];
}

def RaiseONNX : Pass<"qwen-raise-onnx", "::mlir::func::FuncOp"> {
  let summary = "Raise exporters' primitive subgraphs to model-level qwen ops";
  let description = [{
    Pattern-matches what the exporters write for each decoder building block
    and replaces it by the model-level op. Needs ranked types: run
    `--qwen-onnx-infer-shapes` first. Raised so far:

    - embedding: `Gather(table, ids)` on a weight table -> `qwen.embedding`;
    - linear: `MatMul(x, W^T)` (+ `Add(bias)`) on a constant weight ->
      `qwen.linear` (the exporters store W^T; the raised op reads it through
      an `onnx.Transpose` that weight materialization folds into the store);
    - RMSNorm: `x * 1/sqrt(mean(x^2) + eps) * w` in the TorchScript and dynamo
      spellings (`Div(1, .)` or `Reciprocal`, with or without no-op casts),
      `SimplifiedLayerNormalization`, opset 23 `RMSNormalization`, and
      `SkipSimplifiedLayerNormalization` (residual add + norm) ->
      `qwen.rms_norm` (+ `qwen.add`); Qwen3's per-head q/k norms included;
    - SwiGLU: `(g * sigmoid(g)) * u` -> `qwen.silu_mul`;
    - residual adds of two same-shaped activations next to raised ops ->
      `qwen.add`;
    - the LM head: a bias-free linear whose result is the graph's `logits`
      output -> `qwen.logits` (`tied` when it reads the embedding table);
    - RoPE: HF's `x*cos + rotate_half(x)*sin` on a head-split view, with
      cos/sin of `inv_freq x positions` (MatMul or Einsum; theta read off
      the inv_freq constant, every entry checked), com.microsoft and opset 23
      `RotaryEmbedding` (theta from the cos/sin caches) -> `qwen.rope` on the
      flat `[B, T, H*D]` projection; positions are `position_ids` or what the
      graph computed, broadcast to `[B, T]`;
    - attention: `softmax(c * q k^T + mask) v` with GQA `repeat_kv`, KV cache
      `Concat(past, new)` (its presents become the op's), the scale anywhere
      on q, k or the scores, and additive / masked_fill masks proven to keep
      exactly `attention_mask[b, j] && j <= i + past` (TorchScript, dynamo,
      optimum with its IsNaN guard, Qwen1's Trilu); com.microsoft
      `GroupQueryAttention` (packed or not, with its rotary at GQA's own
      positions) and opset 23 `Attention` without a mask -> `qwen.attention`;
    - Qwen3's q/k norms on the head-split view -> per-head `qwen.rms_norm` on
      the projection; a linear only ever sliced along its features (packed
      QKV, Qwen1's `c_attn` + `Split`) -> one `qwen.linear` per slice.

    The RoPE/attention proofs take the graph inputs' shapes as the exporters
    declare them: `input_ids`/`position_ids` `[B, T]`, `attention_mask`
    `[B, P+T]` (0/1), `past_key_values.*` `[B, kv, P, d]`.

    Anything not raised keeps its onnx ops, which keep a generic lowering:
    raising is for speed, never for correctness.
  }];
  let dependentDialects = ["::qwen::QwenDialect", "::qwen::onnxir::ONNXDialect"];
}

def MaterializeWeights : Pass<"qwen-materialize-weights", "::mlir::ModuleOp"> {
  let summary = "Give every weight the layout its consumer reads, in a new store";
  let description = [{
    After raising, weights are often reached through a layout change or an
    ONNX quantized operator. This pass computes those tensors once, at
    compile time, and writes them to a new weight store (`store`), so each
    model-level op reads a plain store entry:

    - `onnx.Transpose` (perm [1, 0]) of a weight becomes the transposed weight
      (exporters store linear weights as W^T; qwen.linear reads W);
    - a constant-bounded, unit-step `onnx.Slice` of a weight becomes its own
      entry (packed QKV / `c_attn` projections split by raising);
    - `onnx.ms.MatMulNBits` (4- or 8-bit, blocks of 32/64/128, optional packed
      zero points, no g_idx) on constant weights becomes `qquant.linear` on a
      `!qquant.weight<N x K, ui4, symmetric|asymmetric, group = B>` whose
      `.codes/.scales/.zeros` entries are the same numbers in qquant's layout;
    - `onnx.ms.GatherBlockQuantized` (4-bit, gathered on axis 0, quantized
      on the last axis) becomes `qquant.embedding` the same way.

    Small results (at most `min-elements`) stay in the IR as constants. The
    new `qwen.store @<store-name>` is added to the module; the original
    stores stay (unused entries are simply not read).
  }];
  let options = [
    Option<"storePath", "store", "std::string", /*default=*/"",
           "Path of the weight store to write (needed when anything is materialized)">,
    Option<"storeName", "store-name", "std::string", /*default=*/"\"derived\"",
           "Symbol name of the qwen.store op to create">,
    Option<"minElements", "min-elements", "int64_t", /*default=*/"64",
           "Results with at most this many elements stay in the IR">,
  ];
  let dependentDialects = ["::qwen::QwenDialect", "::qwen::qquant::QQuantDialect",
                           "::qwen::onnxir::ONNXDialect"];
}

def QuantizeWeights : Pass<"qwen-quantize-weights", "::mlir::ModuleOp"> {
  let summary = "Round-to-nearest uniform quantization of linear, logits and embedding weights";
  let description = [{
    Replaces `qwen.linear` by `qquant.linear`, `qwen.logits` by
    `qquant.logits` (keeping `tied`) and, when `ops` includes `embedding`,
    `qwen.embedding` by `qquant.embedding`. Each weight is read (f32, f16 or
    bf16) from its store, quantized by round-to-nearest-even, packed, and its
    `<name>.codes`, `<name>.scales` (f32) and, for asymmetric schemes,
    `<name>.zeros` entries are written to a new store (`store`, added to the
    module as `qwen.store @<store-name>`), in the layout `getWeightComponents`
    states: codes LSB-first per row, `bits` per code, rows padded to whole
    bytes; signed codes in two's complement.

    Per block (the whole tensor, a row, or `group-size` inputs of a row):
      symmetric:  qmax = 2^(bits-1) - 1, scale = max|w| / qmax,
                  q = clamp(rint(w / scale), -qmax, qmax) (restricted range;
                  2-bit symmetric is ternary); unsigned codes are q + 2^(bits-1).
      asymmetric: lo = min(min w, 0), hi = max(max w, 0),
                  scale = (hi - lo) / (2^bits - 1),
                  zp = clamp(rint(-lo / scale), 0, 2^bits - 1),
                  q = clamp(rint(w / scale) + zp, 0, 2^bits - 1); signed codes
                  and zero points are shifted down by 2^(bits-1).
    All arithmetic in f32; an all-zero block has scale 0 and the zero code.
    A group size that does not divide a weight's columns falls back to the
    largest of 128/64/32 not above it that does, else to per-channel.
    A NaN or Inf in a weight is an error naming it.

    A layer is named by its weight's store entry (the leaf of `qwen.weight
    @store::@"name"`). `layers-file` is a JSON object mapping layer names or
    globs to `"fp32"` or an object with any of `bits`, `granularity`,
    `group_size`, `symmetric`, `signed`, `act` (`"none"|"dynamic"`), which
    replace those fields of the op's scheme; a pattern matching no layer, an
    unknown key, or a layer matched by two globs is an error. `act=dynamic`
    gives `#qquant.act<dynamic, i8, per_token>` and needs signed symmetric
    8-bit tensor or channel weights.

    `grid=log2` (signed symmetric 3 or 4 bits): a code is a sign bit (bit
    bits-1) and a magnitude m (the low bits): 0 if m = 0, else
    +-scale * 2^-(m-1), with scale = max|w| of the block (times the clipping
    ratio); each weight takes the nearest level (ties: the earlier of 0, 1,
    1/2, 1/4, ...).

    Data-driven choices need `calib-tokens` (a JSON token file, see
    Executor.h): the tokens run through the model in the calibration
    executor, op by op, and each quantized op is decided from its own input
    X over the whole set, with the ops before it already quantized
    (sequential), so later layers compensate the error of earlier ones:
      algorithm=gptq   GPTQ with H = X^T X (float accumulation), damping
                       `damp` * mean(diag H), act-order (`act-order`; the
                       group grids are then fitted before the updates on
                       the original weight) and lazy 128-column blocks;
      clip-search      per block, the clipping ratio in {1, 0.95, ..., 0.5}
                       minimising d^T H_bb d (the block's output error);
      bias-correction  bias += E[x] (W - Q)^T (a new bias entry);
      act=static       a layer missing from the scales given by the caller
                       gets threshold(act-method) / 127 of its input.
    The exact numerics are in QuantAlgorithms.h, mirrored in numpy by
    test/Transforms/Inputs/quant_reference.py.
  }];
  let options = [
    Option<"bits", "bits", "unsigned", /*default=*/"4", "Bits per weight: 2, 3, 4 or 8">,
    Option<"mode", "mode", "std::string", /*default=*/"\"symmetric\"",
           "symmetric or asymmetric">,
    Option<"granularity", "granularity", "std::string", /*default=*/"\"group\"",
           "tensor, channel or group">,
    Option<"groupSize", "group-size", "unsigned", /*default=*/"128",
           "Inputs per scale with granularity=group: 32, 64 or 128">,
    Option<"isSigned", "signed", "bool", /*default=*/"true",
           "Signed (iN) or unsigned (uN) codes">,
    Option<"act", "act", "std::string", /*default=*/"\"none\"",
           "Activation quantization: none, dynamic (per-token int8) or static (per-tensor int8 from calib-tokens)">,
    Option<"grid", "grid", "std::string", /*default=*/"\"uniform\"",
           "uniform or log2 (power-of-two levels)">,
    Option<"algorithm", "algorithm", "std::string", /*default=*/"\"rtn\"",
           "rtn or gptq">,
    Option<"clipSearch", "clip-search", "bool", /*default=*/"false",
           "Search each block's clipping ratio on calibration data">,
    Option<"biasCorrection", "bias-correction", "bool", /*default=*/"false",
           "Correct the bias for the mean output shift of the quantization error">,
    Option<"calibTokens", "calib-tokens", "std::string", /*default=*/"",
           "JSON token file of calibration sequences">,
    Option<"damp", "damp", "double", /*default=*/"0.01",
           "GPTQ damping, relative to the mean of diag(H)">,
    Option<"actOrder", "act-order", "bool", /*default=*/"true",
           "GPTQ: quantize columns by decreasing diag(H)">,
    Option<"actMethod", "act-method", "std::string", /*default=*/"\"mse\"",
           "Static activation threshold: max, percentile-99.99, entropy or mse">,
    ListOption<"ops", "ops", "std::string",
               "Op kinds to quantize: linear, logits, embedding (default linear,logits)">,
    Option<"layersFile", "layers-file", "std::string", /*default=*/"",
           "JSON file of per-layer overrides">,
    Option<"storePath", "store", "std::string", /*default=*/"",
           "Path of the weight store to write">,
    Option<"storeName", "store-name", "std::string", /*default=*/"\"quantized\"",
           "Symbol name of the qwen.store op to create">,
  ];
  let dependentDialects = ["::qwen::QwenDialect", "::qwen::qquant::QQuantDialect"];
}

def ShareWeights : Pass<"qwen-share-weights", "::mlir::ModuleOp"> {
  let summary = "Weight sharing: k-means codebooks per tensor, channel or group";
  let description = [{
    `qwen.linear` (and, with `ops`, `qwen.logits` / `qwen.embedding`) on
    float weights become their qquant forms on a
    `!qquant.weight<..., codebook <bits>, <granularity>>`: each block (the
    tensor, an output channel, or `group-size` inputs of one) gets 2^bits f32
    centroids by 1-D k-means (k-means++ from a fixed seed, Lloyd iterations
    until the largest centroid move is at most `tolerance` times the block's
    max |w|, or `max-iters`), each weight the index of its nearest centroid,
    packed to `bits` bits per weight like uniform codes. Written to a new
    store (`store`, declared as `@<store-name>`) as `<name>.codes`
    ([rows, ceil(cols * bits / 8)] u8) and `<name>.codebook` ([books, 2^bits]
    f32, or f16 with `codebook-type=f16`). With `weighted`, the k-means weighs each weight by the mean square
    E[x_j^2] of its input channel over `calib-tokens`, run through the model
    by the calibration executor (earlier layers already shared). The exact
    numerics are in include/qwen/Transforms/WeightSharing.h;
    test/Transforms/Inputs/kmeans_reference.py is their numpy mirror.
    Bits: 2, 3 or 4 (also 8 per tensor).
  }];
  let options = [
    Option<"bits", "bits", "unsigned", /*default=*/"4",
           "Index bits: 2, 3 or 4 (8 with granularity=tensor)">,
    Option<"granularity", "granularity", "std::string", /*default=*/"\"channel\"",
           "One codebook per tensor, channel or group">,
    Option<"groupSize", "group-size", "unsigned", /*default=*/"128",
           "Inputs per codebook with granularity=group: 32, 64 or 128">,
    Option<"weighted", "weighted", "bool", /*default=*/"false",
           "Weigh the k-means by E[x_j^2] of the inputs over calib-tokens">,
    Option<"calibTokens", "calib-tokens", "std::string", /*default=*/"",
           "JSON token file of calibration sequences (weighted=true)">,
    Option<"maxIters", "max-iters", "unsigned", /*default=*/"100",
           "Most Lloyd iterations per codebook">,
    Option<"tolerance", "tolerance", "double", /*default=*/"1e-6",
           "Convergence: largest centroid move relative to max |w|">,
    Option<"codebookType", "codebook-type", "std::string", /*default=*/"\"f32\"",
           "Centroid type in the codebooks: f32 or f16 (k-means rounds to it; bundles cannot carry f16 tensors yet)">,
    ListOption<"ops", "ops", "std::string",
               "Op kinds to share: linear, logits, embedding (default linear)">,
    Option<"storePath", "store", "std::string", /*default=*/"",
           "Path of the weight store to write">,
    Option<"storeName", "store-name", "std::string", /*default=*/"\"shared\"",
           "Symbol name of the qwen.store op to create">,
  ];
  let dependentDialects = ["::qwen::QwenDialect", "::qwen::qquant::QQuantDialect"];
}

def Prune : Pass<"qwen-prune", "::mlir::ModuleOp"> {
  let summary = "Pruning: magnitude or Wanda, unstructured or 2:4";
  let description = [{
    Zeroes weights of `qwen.linear` ops (and `qwen.logits` with
    `ops=logits`) on float weights, before quantization, and marks each
    pruned op `qquant.pruned = "2:4"` or `"unstructured"`; the pruned float
    weights go to a new store (`store`, declared as `@<store-name>`).

    Score of weight (n, k): `method=magnitude` |W[n,k]|; `method=wanda`
    |W[n,k]| * ||X[:,k]||_2 (Sun et al. 2023), the input norms taken over
    `calib-tokens` run through the model by the calibration executor, each
    op pruned when it is reached so later ops see the pruned earlier ones.
    `pattern=unstructured`: the `sparsity` fraction of lowest scores is
    zeroed over the whole weight (magnitude) or in every output row (wanda,
    as its paper compares). `pattern=2:4`: in every row, the 2 lowest scores
    of each group of 4 consecutive inputs (sparsity is then 0.5; the inputs
    must be a multiple of 4). Ties go to the lower input index (kept).

    `--qwen-quantize-weights` then quantizes the pruned weights: a 2:4 op's
    weight is stored compactly (`sparsity = 2:4`: the kept codes plus 2-bit
    positions, half the codes) and lowered to a kernel that reads only the
    kept weights; GPTQ keeps the pruned weights at zero. Unstructured
    zeros stay dense codes (no compact layout: at 50 % a bitmask plus the
    kept codes saves little and no CPU kernel gains from it).
  }];
  let options = [
    Option<"sparsity", "sparsity", "double", /*default=*/"0.5",
           "Fraction of weights zeroed, in [0, 1) (pattern=2:4: 0.5)">,
    Option<"method", "method", "std::string", /*default=*/"\"magnitude\"",
           "magnitude or wanda">,
    Option<"pattern", "pattern", "std::string", /*default=*/"\"unstructured\"",
           "unstructured or 2:4">,
    Option<"calibTokens", "calib-tokens", "std::string", /*default=*/"",
           "JSON token file of calibration sequences (method=wanda)">,
    ListOption<"ops", "ops", "std::string",
               "Op kinds to prune: linear, logits (default linear)">,
    Option<"storePath", "store", "std::string", /*default=*/"",
           "Path of the weight store to write">,
    Option<"storeName", "store-name", "std::string", /*default=*/"\"pruned\"",
           "Symbol name of the qwen.store op to create">,
    Option<"report", "report", "bool", /*default=*/"false",
           "Print each op's zeroed fraction to stderr">,
  ];
  let dependentDialects = ["::qwen::QwenDialect"];
}

def Smooth : Pass<"qwen-smooth", "::mlir::ModuleOp"> {
  let summary = "AWQ / SmoothQuant: equivalent per-channel rescaling searched on calibration data";
  let description = [{
    For each activation read only by `qwen.linear` ops (as their input) and
    produced by a `qwen.rms_norm`, a `qwen.silu_mul` (through the `up`
    linear) or a `qwen.attention` (through the `value` linear, scales tied
    across the query heads of a KV head), per-channel scales s are folded
    in: consumer weight columns times s, producer output channels divided
    by s. The float model's logits do not change (up to rounding); the
    `value` linear's output, and so the KV cache, holds V / s.

    `method=awq`: s = mean|x|^a normalised by sqrt(max * min), the
    exponent a in {0.05, ..., 1} (or `alpha`) minimising the consumers'
    output error under RTN weights at `bits` / `group-size`, or no scaling
    when none beats it. `method=smoothquant`: s = max|x|^a / max|W|^(1-a),
    a in {0.1, ..., 0.9} (or `alpha`), the error taken with X / s quantized
    to int8 (per tensor, or per token with `per-token`) as well. The error
    is measured on up to 4096 evenly spaced tokens of `calib-tokens`, run
    through the float model by the calibration executor. Modified weights
    go to a new store (`store`, declared as `@<store-name>`). With `report`
    each group's choice and errors are printed to stderr.
  }];
  let options = [
    Option<"method", "method", "std::string", /*default=*/"\"awq\"",
           "awq or smoothquant">,
    Option<"alpha", "alpha", "double", /*default=*/"-1.0",
           "Fixed exponent in [0, 1]; < 0 searches it">,
    Option<"bits", "bits", "unsigned", /*default=*/"4",
           "Weight bits the search quantizes to">,
    Option<"groupSize", "group-size", "unsigned", /*default=*/"128",
           "Weight group size of the search (0: per channel)">,
    Option<"perToken", "per-token", "bool", /*default=*/"false",
           "smoothquant: activations quantized per token (else per tensor)">,
    Option<"calibTokens", "calib-tokens", "std::string", /*default=*/"",
           "JSON token file of calibration sequences">,
    Option<"storePath", "store", "std::string", /*default=*/"",
           "Path of the weight store to write">,
    Option<"storeName", "store-name", "std::string", /*default=*/"\"smoothed\"",
           "Symbol name of the qwen.store op to create">,
    Option<"report", "report", "bool", /*default=*/"false",
           "Print each group's scales choice">,
  ];
  let dependentDialects = ["::qwen::QwenDialect"];
}

def FuseActQuant : Pass<"qwen-fuse-act-quant", "::mlir::func::FuncOp"> {
  let summary = "Quantize each activation once, fused into the op that produces it";
  let description = [{
    A `qquant.linear` with `#qquant.act<dynamic, i8, per_token>` quantizes
    its own input: q, k and v (and gate and up) each reduce and round the
    same activation, and the float activation is stored only to be read
    back by them. This pass rewrites every such linear on a weight that
    `qquant.qlinear` takes (signed symmetric dense 8- or 4-bit uniform, f32)
    into `qquant.qlinear` of one per-token quantization of its input per
    distinct input value:

    - `qwen.rms_norm` (not `per_head`) whose users are all such linears:
      `qquant.rms_norm_quantize` (the norm never stores floats);
    - `qwen.silu_mul` whose users are all such linears (the down
      projection): `qquant.silu_mul_quantize`;
    - any other input: `qquant.dynamic_quantize {per_token}` right after its
      producer (e.g. the attention output before o_proj).

    Numerics are unchanged bit for bit: the fused ops compute the same f32
    values as the ops they replace (test/Transforms/fuse-act-quant*). With
    `producers=false` only the sharing (`qquant.dynamic_quantize`) is done.
  }];
  let options = [
    Option<"producers", "producers", "bool", /*default=*/"true",
           "Fuse the quantization into a producing rms_norm / silu_mul">,
  ];
  let dependentDialects = ["::qwen::qquant::QQuantDialect"];
}

def LogitsRows : Pass<"qwen-logits-rows", "::mlir::ModuleOp"> {
  let summary = "Compute the LM head only for the last positions the caller asks for";
  let description = [{
    Generation needs the logits of the last position only, yet the exported
    graph computes them for every position: for a 512-token prompt of
    Qwen2.5-0.5B the LM head is ~28 % of the prefill's multiply-adds and a
    311 MB f32 output. This pass gives the entry function one more argument,
    `logits_rows : tensor<1xi64>` (`onnx.name = "logits_rows"`, the manifest
    role of the same name), and feeds the `qwen.logits` / `qquant.logits` op
    that produces the result named `logits` with the last `r` rows of its
    input only (`r` clamped to [1, S]; a copy, so the head reads a dense
    buffer): the result is [B, r, V]. The runtime passes r = 1 when only the
    last logits are wanted (`qwen_session_set_all_logits`), else the number
    of new positions.

    Nothing changes (no argument is added) when there is no result named
    `logits`, when it is not produced by a logits op of the entry block, or
    when the sequence dimension is static. Errors: no entry function, an
    entry argument already named `logits_rows`.
  }];
  let options = [
    Option<"entry", "entry", "std::string", /*default=*/"\"main\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["::mlir::tensor::TensorDialect", "::mlir::linalg::LinalgDialect",
                           "::mlir::arith::ArithDialect"];
}

def InstrumentActivations : Pass<"qwen-instrument-activations", "::mlir::ModuleOp"> {
  let summary = "Make the input activation of every linear / logits op a result of the entry";
  let description = [{
    For calibration (`qwen-calibrate`): the input of every `qwen.linear`,
    `qwen.logits`, `qquant.linear` and `qquant.logits` in the entry function
    whose weight is a named store entry (`qwen.weight` / `qquant.weight`)
    becomes an extra result of the entry, after the existing ones, in the
    order the ops appear. A value read by several ops (q/k/v projections,
    gate/up) is returned once; its result attributes are
    `qwen.observe = ["<layer>", ...]` (the layer names, i.e. the weights'
    store entries, as recipes name them) and `onnx.name = "observe.<first
    layer>"`. qwen-compile gives such results the manifest role "observe".

    Errors: no entry function, an entry with more than one block, an op
    inside a nested region, an input that is an entry argument, a module that
    is already instrumented, or nothing to observe.
  }];
  let options = [
    Option<"entry", "entry", "std::string", /*default=*/"\"main\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["::qwen::QwenDialect", "::qwen::qquant::QQuantDialect"];
}

def LowerModelToLinalg : Pass<"qwen-lower-model-to-linalg", "::mlir::func::FuncOp"> {
  let summary = "Lower qwen model ops and onnx constants/position ops to linalg, tensor, arith and math";
  let description = [{
    Rewrites the model-level ops of the `qwen` dialect into `linalg.generic`
    (with explicit indexing maps), `linalg.fill`, `tensor` and `arith`/`math`
    ops, exactly per the ops' semantics, computing in f32:

    - `qwen.add`, `qwen.silu_mul`: elementwise generics
      (`silu(g) = g / (1 + exp(-g))`);
    - `qwen.linear` / `qwen.logits`: a reduction generic over the last input
      dimension, any number of leading (possibly dynamic) batch dims, `W`
      read as `[out, in]`; the bias (if any) is broadcast into the init;
    - `qwen.rms_norm`: a sum-of-squares reduction, then
      `x * rsqrt(mean + eps) * w`; with `per_head` the mean is taken over
      each group of `head_dim` features;
    - `qwen.embedding`: a generic whose body `tensor.extract`s the table row
      (ids i32/i64 cast to index; no bounds check);
    - `qwen.rope`: `half` and `interleaved`; `inv_freq[i] = theta^(-2i/rotary_dim)`
      is folded to an f32 constant at compile time, the angle is
      `f32(position) * inv_freq[i]`; features past `rotary_dim` pass through;
    - `qwen.attention`: GQA (query head h reads kv head
      `h / (num_heads/num_kv_heads)`), `present = concat(past, new)` built
      with `tensor.insert_slice`, causal masking offset by the past length P,
      optional `[B, P+T]` mask (non-zero = keep), and a max-subtracted
      softmax. A row whose keys are all masked has output 0 (not NaN);
    - `onnx.Constant`: 1:1 to `arith.constant` with the same elements
      attribute (any element type), so that a raised whole model, whose
      only leftover `onnx` ops are constants, lowers completely;
    - the position computations that no-cache exports leave after raising
      (dynamic shapes, any element type):
      `onnx.Shape` (optional `start`/`end`) to `tensor.from_elements` of the
      `tensor.dim`s cast to i64; `onnx.Gather` of a 1-D tensor by a scalar
      index (axis 0) to `tensor.extract` (a negative index wraps by the
      length) and `tensor.from_elements`; `onnx.Unsqueeze` / `onnx.Squeeze`
      with constant axes (Squeeze without axes: all static unit dims) to
      `tensor.expand_shape` / `tensor.collapse_shape`; `onnx.Range` of 0-D
      integer scalars to a `tensor.generate` of `start + i * delta` with
      `max(0, ceildiv(limit - start, delta))` elements; `onnx.Expand` to a
      static-length 1-D shape tensor to a broadcasting `linalg.generic`
      (numpy alignment; input dims that are a static 1 broadcast and take
      their size from the `tensor.extract`ed shape entry, other input dims
      keep their size).

    Only f32 operands/results of the qwen ops are lowered.

    Every other onnx op, and the forms of the ops above that the special
    lowerings do not take, go through the generic lowering
    (`lib/Transforms/LowerONNXToLinalg.cpp`): elementwise unary / binary /
    variadic ops, comparisons and logical ops with full multidirectional
    broadcasting (dynamic dims that may broadcast at run time are read with
    `tensor.extract` at `select(dim == 1, 0, i)`), Cast / CastLike between
    float and integer types, Where, ReduceSum/Mean/Max/Min (constant axes,
    keepdims, noop_with_empty_axes), Softmax, MatMul (numpy batching and
    1-D operands), Gemm, Einsum (no ellipsis), Reshape (0 / -1, run-time shape
    tensors, via `tensor.reshape`), Flatten, Squeeze/Unsqueeze, Transpose,
    Concat, Split, Slice (run-time starts/ends/steps, constant axes), Gather,
    GatherElements, GatherND, Expand, Tile, Trilu, CumSum (constant axis),
    ConstantOfShape, Shape, Size, Range, DequantizeLinear,
    LayerNormalization, RMSNormalization, SimplifiedLayerNormalization, and
    com.microsoft SkipSimplifiedLayerNormalization, MatMulNBits (u8 zero
    points or none) and GatherBlockQuantized.

    `qquant.linear` / `embedding` / `logits` / `dequantize_weight` on a
    `qquant.weight` of a uniform dense scheme (2..8 bits, signed or not,
    symmetric or not, tensor / channel / group): the components become
    `qwen.weight` ops of `<name>.codes` / `.scales` / `.zeros` (dtypes from
    the store's index; run `--qwen-internalize-weights` afterwards to inline
    them) and the weight is dequantized in a linalg.generic:
    `w = (q - zp) * scale` with codes packed LSB first within each row, signed
    codes sign-extended, `zp = 0` for signed symmetric, `2^(bits-1)` for
    unsigned symmetric (onnxruntime's MatMulNBits default) and the stored zero
    point otherwise. Embedding dequantizes only the rows it reads.

    Not lowered (left in place): ops with unranked operands or unsupported
    element types, non-constant axes, Attention, GroupQueryAttention,
    RotaryEmbedding, ScatterND/ScatterElements, QuantizeLinear,
    DynamicQuantizeLinear, MatMulInteger, codebook / log2 / sparse qquant
    schemes and quantized activations (`act`). With `strict`, each op of the
    onnx, qwen or qquant dialects left after lowering (weight references
    `qwen.weight`, `qwen.store`, `qquant.weight` excepted) gets one error at
    its location and the pass fails.
  }];
  let options = [
    Option<"strict", "strict", "bool", /*default=*/"false",
           "Fail with one error per onnx/qwen/qquant op left unlowered">,
  ];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect"];
}


//===----------------------------------------------------------------------===//
// Mixed precision (issue 7): sensitivity, then assignment under a budget.
//===----------------------------------------------------------------------===//

def Sensitivity : Pass<"qwen-sensitivity", "::mlir::ModuleOp"> {
  let summary = "Measure the output KL of each candidate scheme per layer";
  let description = [{
    Runs the raised float model on calibration tokens with the reference
    executor; then for each layer (the store entry of the weight of a
    `qwen.linear` / `qwen.logits` / `qwen.embedding`; a tied table is one
    layer) and each candidate scheme, runs it again with only that weight
    replaced by its round-to-nearest round trip (the numerics of
    --qwen-quantize-weights, including its group-size fallback) and measures
    the mean KL(P_float || P_quantized) of the next-token distributions over
    all calibration tokens. Writes on each op of the layer
    `qquant.sensitivity = [#qquant.cost<scheme = ..., loss = KL, bits = stored
    bits per weight (, latency = ms from cost-model=)>, ...]`.
  }];
  let options = [
    Option<"calibTokens", "calib-tokens", "std::string", /*default=*/"",
           "Token file: JSON {\"sequences\": [[id, ...], ...]}">,
    Option<"schemes", "schemes", "std::string",
           /*default=*/"\"i8-channel,i4-g32,i4-g128,i3-g128,i2-g64,cb4-channel,i4-g128-2:4\"",
           "Candidate schemes (i<bits>-channel|tensor|g<N>[-asym][-2:4], u..., cb<bits>-channel|tensor|g<N>)">,
    Option<"maxTokens", "max-tokens", "int64_t", /*default=*/"0",
           "Use at most this many calibration tokens (0: all)">,
    Option<"embedding", "embedding", "bool", /*default=*/"true",
           "Also measure an untied embedding table">,
    Option<"costModelFile", "cost-model", "std::string", /*default=*/"",
           "Kernel timings JSON: latency per op and scheme">,
    Option<"entry", "entry", "std::string", /*default=*/"\"main\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["::qwen::qquant::QQuantDialect"];
}

def AssignPrecision : Pass<"qwen-assign-precision", "::mlir::ModuleOp"> {
  let summary = "Pick one scheme per layer within a budget (exact solver)";
  let description = [{
    Reads `qquant.sensitivity` (from --qwen-sensitivity) and chooses one
    candidate per layer minimising the summed measured loss with the summed
    cost within the budget: `avg-bits` (stored bits of the layers over their
    number of weights), `size-mb` (bytes of every weight the module
    references, 1e6 bytes a MB) or `latency-ms` (summed `latency` of the
    costs). Exact multiple-choice knapsack (a DP over Pareto fronts; see
    include/qwen/Transforms/MixedPrecision.h). Writes
    `qquant.decision<scheme, reason = budget | sensitivity | pinned, loss,
    budget>` on each op; --qwen-quantize-weights follows it. `pins` is a JSON
    recipe file (or its "layers" object) whose layers are forced (fields over
    i8 per channel; "fp32" keeps a layer float). An unreachable budget is an
    error that says what the cheapest assignment needs.
  }];
  let options = [
    Option<"avgBits", "avg-bits", "double", /*default=*/"0",
           "Budget: average stored bits per weight">,
    Option<"sizeMb", "size-mb", "double", /*default=*/"0",
           "Budget: weight bytes in MB (1e6)">,
    Option<"latencyMs", "latency-ms", "double", /*default=*/"0",
           "Budget: predicted ms per decoded token of the layers">,
    Option<"pins", "pins", "std::string", /*default=*/"",
           "JSON file of pinned layers (recipe-file \"layers\" syntax)">,
    Option<"printAssignment", "print-assignment", "bool", /*default=*/"false",
           "Print the assignment table to stdout">,
    Option<"recipeOut", "recipe-out", "std::string", /*default=*/"",
           "Also write the assignment as a qwen-compile recipe file">,
  ];
  let dependentDialects = ["::qwen::qquant::QQuantDialect"];
}

//===----------------------------------------------------------------------===//
// Integer-only inference (w8a8-int-only)
//===----------------------------------------------------------------------===//

def IntegerOnly : Pass<"qwen-integer-only", "::mlir::ModuleOp"> {
  let summary = "int8 x int8 -> int32 linear stack with fused requantization";
  let description = [{
    Runs after `--qwen-quantize-weights` of a w8a8 module (static per-tensor
    int8 activations `#qquant.act<static : !quant.uniform<i8:f32, s>>` on
    signed symmetric i8/i4 weights per tensor or channel).

    1. Each such `qquant.linear` becomes `qquant.quantize` of its input (one
       per input tensor and scale: q/k/v and gate/up share it) ->
       `qquant.int_linear` (exact int32 accumulation) -> `qquant.dequantize`
       with `scale[n] = f32(s_x * s_w[n])` and the bias. Numerically the
       static w8a8 lowering.
    2. `requantize-mlp` (default on): `qwen.silu_mul(linear_g(x),
       linear_u(x))` read only by static linears (down projections, scale
       s_d) becomes an integer chain. The gate / up accumulators are
       requantized to int8 (`qquant.requantize`, per output channel
       `M[n] = s_x * s_w[n] / s_out`) with the calibrated output scales of
       the sites `<layer>#out` (`calib=stats.json`, `method=` as qwen-compile's
       --calib-method; qwen-calibrate --int-only-sites observes them). With
       `silu-lut` (default on) SiLU is `qquant.lookup` with the 256-entry
       table `T[i] = clamp(roundeven(silu((i - 128) * s_g) / s_s), -127,
       127)`, `s_s = max_{|q| <= 127} |silu(q * s_g)| / 127`, the product
       with up is `qquant.int_mul` and one `qquant.requantize` by
       `M = s_s * s_u / s_d` gives the down projection's int8 input
       directly. Without it the int8 gate/up are dequantized, SiLU * up runs
       in f32 and is quantized with s_d. A MLP without calibrated output
       scales keeps the form of step 1 (a remark says so).

    Fixed-point multipliers (gemmlowp): a real `0 < M < 1` is
    `multiplier * 2^-31 * 2^-shift`, `multiplier = round(frac * 2^31)` in
    [2^30, 2^31) for `M = frac * 2^-shift`, `frac` in [0.5, 1); M below 2^-32
    is (0, 0). `qquant.requantize` applies it bit-exactly as
    SaturatingRoundingDoublingHighMul + RoundingDivideByPOT (QQuantOps.td);
    a multiplier >= 1 is an error.

    3. `int-rms-norm` (default on): a `qwen.rms_norm` (not per head) whose
       only readers are int8 `qquant.quantize` ops of one scale s_out (the
       q/k/v or gate/up input) becomes `qquant.quantize` of its input to
       int16 with `s_in = max|x| / 32767` of the calibrated site
       `<norm weight>#in` -> `qquant.int_rms_norm` (int64 sum of squares,
       integer Newton square root, per-channel fixed-point gain
       `round(gamma * sqrt(K) / s_out * 2^16)`, QQuantOps.td) -> int8.

    What stays float, and why: the residual stream (RMSNorm reads it as a
    temporary int16 copy; an int8 residual would add error at every block);
    rope,
    attention (softmax) and the residual adds stay f32 and meet the integer
    ops through explicit `qquant.quantize` / `qquant.dequantize`; the LM
    head and embedding stay weight-only as in w8a8.
  }];
  let options = [
    Option<"calib", "calib", "std::string", /*default=*/"\"\"",
           "qwen-calibrate statistics with the <layer>#out sites">,
    Option<"method", "method", "std::string", /*default=*/"\"mse\"",
           "Threshold of the sites: max, percentile, percentile-99.9, entropy, mse">,
    Option<"requantizeMlp", "requantize-mlp", "bool", /*default=*/"true",
           "Requantize the gate/up outputs to int8 (integer MLP chain)">,
    Option<"siluLut", "silu-lut", "bool", /*default=*/"true",
           "SiLU as a 256-entry int8 table and an integer product with up">,
    Option<"intRmsNorm", "int-rms-norm", "bool", /*default=*/"true",
           "RMSNorms read only by int8 quantizations become qquant.int_rms_norm">,
  ];
  let dependentDialects = ["::qwen::QwenDialect", "::qwen::qquant::QQuantDialect"];
}

def InstrumentIntegerOnlySites : Pass<"qwen-instrument-integer-only-sites", "::mlir::ModuleOp"> {
  let summary = "Also observe the gate/up linear outputs (for --qwen-integer-only)";
  let description = [{
    After `--qwen-instrument-activations`: the output of every linear op of
    the entry (named weight, f32, rank >= 2) that is the gate or up operand
    of a `qwen.silu_mul` becomes an extra result with
    `qwen.observe = ["<layer>#out"]` and `onnx.name = "observe.<layer>.out"`.
    The input of every `qwen.rms_norm` (not per head, named weight) read by
    linear ops becomes a result `qwen.observe = ["<norm weight>#in"]`.
    qwen-calibrate `--int-only-sites` turns it on inside its compile, so
    stats.json gains `"<layer>#out"` / `"<norm weight>#in"` entries in
    `"layers"` (qwen-compile's --calib ignores names with `#`).
  }];
  let options = [
    Option<"entry", "entry", "std::string", /*default=*/"\"main\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["::qwen::QwenDialect", "::qwen::qquant::QQuantDialect"];
}

#endif // QWEN_TRANSFORMS_PASSES
