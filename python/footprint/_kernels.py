"""Meta kernels the Python process needs beside the C++ engine's (src/torch/meta_kernels.cpp):
ops whose own meta implementation (torch/_meta_registrations.py) refuses what the target's
real kernel accepts. Each returns the real kernel's outputs and allocates nothing else."""
import torch
from torch._meta_registrations import _create_grouped_mm_output_tensor

_lib = torch.library.Library("aten", "IMPL", "Meta")


def _grouped_mm(mat_a, mat_b, offs=None, bias=None, out_dtype=None):
    # torch.nn.functional.grouped_mm (transformers' mixture-of-experts layers). Python's meta
    # kernel checks the CUDA kernel's bf16-only rule; the CPU kernel (and CUDA's fallback in
    # 2.11) takes fp32 too. The output is what both make (Blas.cpp, create_grouped_gemm_output).
    return _create_grouped_mm_output_tensor(mat_a, mat_b, offs, out_dtype)


_lib.impl("_grouped_mm", _grouped_mm, allow_override=True)


_libtorch_meta = None


def use_libtorch_meta_kernels():
    """Meta as LibTorch's C++ runs it, where LibTorch can run the op on meta.

    `import torch` registers Python meta kernels (torch/_meta_registrations.py) for about 1,300
    aten ops, over LibTorch's own: its C++ meta kernels and the composite kernels that call other
    ops. Those are what footprint's C++ engine runs, and what its kernel models were checked
    against (0.37% of real CPU runs). The Python ones are decompositions whose outputs and
    lifetimes can differ: with them, ConvNeXt's training step came out 2.3% (torchvision's
    convnext_tiny) and 9.9% (timm's convnext_atto) under a real CPU run, and exact without them.
    So at the first capture, the Python meta kernels are taken back, and put again only for the
    ops LibTorch has no meta or composite kernel for (about 260). This lasts for the process:
    FakeTensorMode and torch.compile then see LibTorch's meta kernels for those ops, as a C++
    program does."""
    global _libtorch_meta
    if _libtorch_meta is not None:
        return
    import torch._meta_registrations as registrations
    from torch._decomp import global_decomposition_table
    library = registrations._meta_lib_dont_use_me_use_register_meta
    registered = {key.split("/")[1] for key in library._op_impls}
    table = {}
    for kind in ("meta", "post_autograd", "pre_autograd"):  # activate_meta's precedence
        for op, fn in global_decomposition_table[kind].items():
            table.setdefault(op, fn)
    library._destroy()
    kept = torch.library.Library("aten", "IMPL", "Meta")
    for op, fn in table.items():
        if not isinstance(op, torch._ops.OpOverload):
            continue
        name = op.name()
        short = name.split("::", 1)[1]
        if short not in registered:
            continue
        if any(torch._C._dispatch_has_kernel_for_dispatch_key(name, key) for key in
               ("Meta", "CompositeExplicitAutograd", "CompositeImplicitAutograd",
                "CompositeExplicitAutogradNonFunctional")):
            continue
        kept.impl(short, fn, allow_override=True)
    _libtorch_meta = kept
