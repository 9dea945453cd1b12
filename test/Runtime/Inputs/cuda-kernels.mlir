// Kernels of a CUDA model.so as MLIR 22 embeds them (gpu.binary): its LLVM
// translation loads them from a global constructor through mgpuModuleLoad
// (cubin, "bin") and mgpuModuleLoadJIT (PTX, "assembly") and unloads them from
// a destructor. The bytes are no real kernels: the fake driver refuses them.
module attributes {gpu.container_module} {
  gpu.binary @cubin [#gpu.object<#nvvm.target<chip = "sm_80">, bin = "not a cubin">]
  gpu.binary @ptx [#gpu.object<#nvvm.target<chip = "sm_80">, assembly = "not PTX">]
}
