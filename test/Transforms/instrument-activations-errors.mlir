// RUN: qwen-opt %s --split-input-file --qwen-instrument-activations --verify-diagnostics

// An input that is an entry argument: the result would alias the input.
qwen.store @w "model.qws"
func.func @main(%x: tensor<1x4x64xf32>) -> tensor<1x4x32xf32> {
  %wq = qwen.weight @w::@q : tensor<32x64xf32>
  // expected-error @+1 {{'qwen.linear' op layer 'q' reads an entry argument; a result would alias it}}
  %q = qwen.linear %x, %wq : (tensor<1x4x64xf32>, tensor<32x64xf32>) -> tensor<1x4x32xf32>
  return %q : tensor<1x4x32xf32>
}

// -----

// Nothing to observe.
// expected-error @+1 {{'func.func' op has no linear or logits op with a named weight to observe}}
func.func @main(%x: tensor<1x4x64xf32>) -> tensor<1x4x64xf32> {
  %y = arith.addf %x, %x : tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

// No entry function.
// expected-error @+1 {{--qwen-instrument-activations: no entry function @main with a body}}
module {
  func.func @other(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
}

// -----

// A linear inside a nested region cannot be returned from the entry.
qwen.store @w "model.qws"
func.func @main(%x: tensor<1x4x64xf32>, %c: i1) -> tensor<1x4x32xf32> {
  %wq = qwen.weight @w::@q : tensor<32x64xf32>
  %x2 = arith.addf %x, %x : tensor<1x4x64xf32>
  %r = scf.if %c -> tensor<1x4x32xf32> {
    // expected-error @+1 {{'qwen.linear' op layer 'q' is inside a nested region; only ops of the entry block can be observed}}
    %q = qwen.linear %x2, %wq : (tensor<1x4x64xf32>, tensor<32x64xf32>) -> tensor<1x4x32xf32>
    scf.yield %q : tensor<1x4x32xf32>
  } else {
    // expected-error @+1 {{'qwen.linear' op layer 'q' is inside a nested region}}
    %q = qwen.linear %x2, %wq : (tensor<1x4x64xf32>, tensor<32x64xf32>) -> tensor<1x4x32xf32>
    scf.yield %q : tensor<1x4x32xf32>
  }
  return %r : tensor<1x4x32xf32>
}
