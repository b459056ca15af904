"""Forward FLOPs against PyTorch's own counter, torch.utils.flop_counter.FlopCounterMode, on every
zoo model (tests/python/zoo.py) in inference.

FlopCounterMode counts the matrix products it sees at the dispatcher (convolution, addmm, mm, bmm,
baddbmm, and CUDA's attention kernels) as 2 x multiply-accumulates, without bias adds. footprint
counts every op, at the op the model called (aten::linear, aten::conv2d, aten::matmul), bias adds
apart (docs/flops.md). The documented differences, left out of the comparison:
- bias adds: footprint's bias_flops, which FlopCounterMode does not count;
- attention: FlopCounterMode has no rule for the CPU's scaled_dot_product_attention kernels, and
  footprint's count of them (docs/flops.md) is left out;
- nn.MultiheadAttention's fused inference path (_native_multi_head_attention) is one op to
  FlopCounterMode, which cannot see its projections; footprint counts them as the linears they
  are. The counter's run takes the unfused path (torch.backends.mha.set_fastpath_enabled(False)),
  whose products are the same;
- every other op (element-wise, norms, pooling): FlopCounterMode has no rule for them.
So: footprint's FLOPs of the matrix-product ops, less their bias adds, equal FlopCounterMode's
total, exactly."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import footprint
import zoo

MATRIX = {"aten::linear", "aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::conv_transpose1d",
          "aten::conv_transpose2d", "aten::conv_transpose3d", "aten::convolution", "aten::matmul",
          "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::einsum"}


@pytest.mark.parametrize("name", sorted(zoo.ALL))
def test_forward_flops_equal_flop_counter_mode(name):
    model = zoo.build(name).eval()
    args, kwargs = zoo.inputs(name, 2)
    s = footprint.summary(model, input_data=list(args) if args else dict(kwargs), device="cpu")
    ours = sum(r["cost"]["flops"] - r["cost"]["bias_flops"] for r in s.to_dict()["by_op"]
               if r["phase"] == "forward" and r["op"] in MATRIX)
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(*args, **kwargs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    assert ours == counter.get_total_flops()
    assert s.total_params == sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
