// RUN: qwen-opt %s --split-input-file --qwen-logits-rows -verify-diagnostics

// expected-error @+1 {{already has an argument named 'logits_rows' (#1)}}
func.func @main(%a: tensor<1x?x64xf32>, %r: tensor<1xi64> {onnx.name = "logits_rows"}) -> (tensor<1x?x64xf32> {onnx.name = "logits"}) {
  return %a : tensor<1x?x64xf32>
}

// -----

// expected-error @+1 {{--qwen-logits-rows: no entry function @main with a body}}
module {
  func.func private @main(tensor<1x?x64xf32>) -> tensor<1x?x64xf32>
}
