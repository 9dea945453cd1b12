//===- QQuantAttrs.td - quantization schemes and statistics -*- tablegen -*-===//

#ifndef QWEN_QQUANT_ATTRS
#define QWEN_QQUANT_ATTRS

include "QQuant/QQuantBase.td"
include "mlir/IR/BuiltinAttributes.td"

class QQuant_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<QQuant_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

// A float printed without a type suffix (`min = -3.5`), stored as f64.
class QQuant_F64Parameter<string desc = ""> : AttrOrTypeParameter<"::mlir::FloatAttr", desc> {
  let parser = [{ [&]() -> ::mlir::FailureOr<::mlir::FloatAttr> {
      double v;
      if ($_parser.parseFloat(v))
        return ::mlir::failure();
      return ::mlir::FloatAttr::get(::mlir::Float64Type::get($_parser.getContext()), v);
    }() }];
  let printer = [{ $_printer.printFloat($_self.getValue()) }];
}
class QQuant_OptionalF64Parameter<string desc = ""> : QQuant_F64Parameter<desc> {
  let defaultValue = "::mlir::FloatAttr()";
}

def QQuant_Grid : I32EnumAttr<"Grid", "quantization grid", [
    I32EnumAttrCase<"uniform", 0>,   // evenly spaced levels: scale * (q - zp)
    // log2 iB (B = 3 or 4), symmetric, no zero points: code c packed like
    // uniform codes; sign = bit B-1 of c (1 = negative), m = c & (2^(B-1)-1);
    // value = 0 if m == 0, else (sign ? -1 : 1) * scale * 2^-(m-1).
    I32EnumAttrCase<"log2", 1>,
    I32EnumAttrCase<"codebook", 2>   // 2^bits centroids, indices packed to bits
  ]> {
  let cppNamespace = "::qwen::qquant";
  let genSpecializedAttr = 0;
}
def QQuant_Granularity : I32EnumAttr<"Granularity", "scale granularity", [
    I32EnumAttrCase<"tensor", 0>,
    I32EnumAttrCase<"channel", 1>,   // one per output channel (row of W[N,K])
    I32EnumAttrCase<"group", 2>      // one per block of group_size inputs of a row
  ]> {
  let cppNamespace = "::qwen::qquant";
  let genSpecializedAttr = 0;
}
def QQuant_Sparsity : I32EnumAttr<"Sparsity", "sparsity pattern", [
    I32EnumAttrCase<"dense", 0>,
    I32EnumAttrCase<"s2_4", 1, "2:4">,           // 2 of every 4 inputs kept
    I32EnumAttrCase<"unstructured", 2>           // any zeros, bitmask stored
  ]> {
  let cppNamespace = "::qwen::qquant";
  let genSpecializedAttr = 0;
}
def QQuant_ActMode : I32EnumAttr<"ActMode", "activation quantization mode", [
    I32EnumAttrCase<"static_", 0, "static">,     // scale fixed by calibration
    I32EnumAttrCase<"dynamic", 1>                // scale computed at run time
  ]> {
  let cppNamespace = "::qwen::qquant";
  let genSpecializedAttr = 0;
}
def QQuant_Reason : I32EnumAttr<"Reason", "why a precision was chosen", [
    I32EnumAttrCase<"recipe", 0>,       // a named recipe applied to every op
    I32EnumAttrCase<"pinned", 1>,       // pinned by name in a recipe file
    I32EnumAttrCase<"budget", 2>,       // picked by the solver within a budget
    I32EnumAttrCase<"sensitivity", 3>   // kept high because the op is sensitive
  ]> {
  let cppNamespace = "::qwen::qquant";
  let genSpecializedAttr = 0;
}

def QQuant_SchemeAttr : QQuant_Attr<"Scheme", "scheme"> {
  let summary = "How a weight is quantized: grid, bits, signedness, granularity, sparsity";
  let description = [{
    Written as a list: the storage first (`i4`/`u4` for a uniform grid,
    `log2 i4` for power-of-two levels, `codebook 4` for 16 centroids), then
    `symmetric` or `asymmetric` (uniform grids only: asymmetric stores a zero
    point per scale), then `tensor`, `channel` or `group = N`, then optionally
    `sparsity = 2:4` or `sparsity = unstructured`.

    ```mlir
    #qquant.scheme<i4, symmetric, group = 128>
    #qquant.scheme<u8, asymmetric, channel>
    #qquant.scheme<codebook 4, channel>
    #qquant.scheme<i4, symmetric, group = 64, sparsity = 2:4>
    ```
  }];
  let parameters = (ins "Grid":$grid, "unsigned":$bits, "bool":$isSigned,
                        "bool":$symmetric, "Granularity":$granularity,
                        "unsigned":$groupSize, "Sparsity":$sparsity);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Storage bits per weight including scales, zero points, codebooks and
    /// sparsity metadata, for a [rows, cols] weight.
    double getBitsPerWeight(int64_t rows, int64_t cols) const;
    /// Parses/prints the list between the angle brackets (shared with
    /// !qquant.weight, which writes its scheme inline).
    static ::mlir::Attribute parseBody(::mlir::AsmParser &parser);
    void printBody(::mlir::AsmPrinter &printer) const;
    /// Number of scales per row for a row of `cols` inputs.
    int64_t getScalesPerRow(int64_t cols) const;
    bool hasZeroPoints() const { return getGrid() == Grid::uniform && !getSymmetric(); }
  }];
}

def QQuant_ActivationAttr : QQuant_Attr<"Activation", "act"> {
  let summary = "How a linear op's input activation is quantized";
  let description = [{
    Static (per tensor, scale fixed by calibration; the upstream quant type
    holds scale and zero point) or dynamic (scale computed at run time per
    token or per tensor, symmetric).

    ```mlir
    #qquant.act<static : !quant.uniform<i8:f32, 0.0235:-3>>
    #qquant.act<dynamic, i8, per_token>
    ```
  }];
  let parameters = (ins "ActMode":$mode, "unsigned":$bits, "bool":$perToken,
                        "::mlir::quant::UniformQuantizedType":$staticType);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
}

def QQuant_StatsAttr : QQuant_Attr<"Stats", "stats"> {
  let summary = "Calibration statistics of one tensor";
  let description = [{
    Per-tensor figures inline; per-channel figures, the histogram and a
    linear's input second moment (X^T X) are weight-store entries named by
    symbol references, so the IR stays small.

    ```mlir
    #qquant.stats<count = 4096, min = -3.5, max = 4.25, absmax_p9999 = 3.9,
                  clip_kl = 3.1, clip_mse = 3.3,
                  channels = @calib::@"l0.q_proj.in.absmax",
                  histogram = @calib::@"l0.q_proj.in.hist",
                  moment2 = @calib::@"l0.q_proj.in.xtx">
    ```
  }];
  let parameters = (ins
    "int64_t":$count, QQuant_F64Parameter<>:$min, QQuant_F64Parameter<>:$max,
    QQuant_OptionalF64Parameter<>:$absmax_p9999,
    QQuant_OptionalF64Parameter<>:$clip_kl,
    QQuant_OptionalF64Parameter<>:$clip_mse,
    OptionalParameter<"::mlir::SymbolRefAttr">:$channels,
    OptionalParameter<"::mlir::SymbolRefAttr">:$histogram,
    OptionalParameter<"::mlir::SymbolRefAttr">:$moment2);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def QQuant_DecisionAttr : QQuant_Attr<"Decision", "decision"> {
  let summary = "The precision chosen for an op, and why";
  let description = [{
    Attached to a linear, embedding or logits op as `qquant.decision`.
    `loss` is the predicted loss (e.g. output KL) of this choice,
    `budget` the budget the solver worked under.

    ```mlir
    qwen.linear %x, %w {qquant.decision = #qquant.decision<
        scheme = #qquant.scheme<i4, symmetric, group = 128>, reason = budget,
        loss = 1.2e-3, budget = "avg-bits=4.5">} : ...
    ```
  }];
  let parameters = (ins "SchemeAttr":$scheme, "Reason":$reason,
                        QQuant_OptionalF64Parameter<>:$loss,
                        OptionalParameter<"::mlir::StringAttr">:$budget);
  let assemblyFormat = "`<` struct(params) `>`";
}


def QQuant_CostAttr : QQuant_Attr<"Cost", "cost"> {
  let summary = "The measured cost of one candidate scheme for an op's weight";
  let description = [{
    One entry of the `qquant.sensitivity` array that --qwen-sensitivity
    writes on a linear, logits or embedding op (read by
    --qwen-assign-precision): `loss` is the mean KL divergence of the
    model's next-token distribution on the calibration tokens when only this
    op's weight is quantized with `scheme` (round-to-nearest), `bits` the
    stored bits per weight of that scheme (codes + f32 scales + zero points,
    as weights.bin holds it), `latency` (optional) the predicted time of the
    op in milliseconds per decoded token from the kernel cost model.

    ```mlir
    qwen.linear %x, %w {qquant.sensitivity = [
        #qquant.cost<scheme = #qquant.scheme<i8, symmetric, channel>,
                     loss = 3.1e-6, bits = 8.125>,
        #qquant.cost<scheme = #qquant.scheme<i4, symmetric, group = 128>,
                     loss = 2.2e-4, bits = 4.25>]} : ...
    ```
  }];
  let parameters = (ins "SchemeAttr":$scheme, QQuant_F64Parameter<>:$loss,
                        QQuant_F64Parameter<>:$bits,
                        QQuant_OptionalF64Parameter<>:$latency);
  let assemblyFormat = "`<` struct(params) `>`";
}

#endif // QWEN_QQUANT_ATTRS
