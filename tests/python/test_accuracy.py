"""footprint.memory on real torchvision, timm and transformers models (tests/python/zoo.py, random
weights, built at test time), against real CPU runs of the same models in this process
(tests/python/real.py: MEASUREMENT.md's profiler protocol, one thread): inference, and two AdamW
training steps (the for-loop, PyTorch's CPU default), at batch 2.

Per model and mode:
- the allocated peak is within 1% of the real run's (the issue's bar; the measured errors are in
  docs/python.md);
- the ops the forward called at the top level are the real run's, in order;
- the model is left as it was: its tensors, their values' storage, its training flags, no grads.
"""
import pytest
import torch

import footprint
from figures import record
import real
import zoo

BATCH = 2
TOLERANCE = 0.01
# Runs footprint misses by more than 1%, with the error measured by this test (the reason is not
# found yet; docs/python.md). strict: when one comes within 1%, the test says so, and the entry goes.
KNOWN_GAPS = {}  # none since t5's was found (2026-11-28, docs/memory.md)


def _input_data(args, kwargs):
    return list(args) if args else dict(kwargs)


def _state(model):
    return ([(n, p.data_ptr(), p.requires_grad, p.grad) for n, p in model.named_parameters()],
            [(n, b.data_ptr()) for n, b in model.named_buffers()],
            [m.training for m in model.modules()])


def _as_on_meta(ops):
    """The real run's top-level ops as meta calls them. One documented difference:
    torch.tensor(data, device=d) makes its tensor on the host and copies it (aten::empty, then
    aten::to and aten::lift_fresh), where on meta, which holds no data, it is one aten::empty of
    the result (torch/csrc/utils/tensor_new.cpp, internal_new_from_data). The device memory is
    the same: one tensor of the result's size."""
    out = []
    for name in ops:
        if name == "aten::lift_fresh":
            if out and out[-1] == "aten::to":
                out.pop()
            continue
        out.append(name)
    return out


def _setitem_as_on_cpu(ops):
    """footprint's top-level ops, with one more documented difference undone: `t[index] = number`
    fills the slice on the CPU (aten::fill_), where on meta, as on CUDA, the number becomes a
    scalar tensor that is copied in (aten::scalar_tensor, the slicing, then view, expand and
    copy_: torch/csrc/autograd/python_variable_indexing.cpp). The scalar is 4 or 8 bytes."""
    out, pending = [], False
    for name in ops:
        if name == "aten::scalar_tensor":
            pending = True
            continue
        if pending and name in ("aten::view", "aten::expand"):
            continue
        if pending and name == "aten::copy_":
            out.append("aten::fill_")
            pending = False
            continue
        out.append(name)
    return out


@pytest.mark.parametrize("train", [False, True], ids=["inference", "adamw"])
@pytest.mark.parametrize("name", sorted(zoo.ALL))
def test_peak_and_ops_match_a_real_cpu_run(name, train, request):
    gap = KNOWN_GAPS.get((name, train))
    if gap is not None:
        request.applymarker(pytest.mark.xfail(
            strict=True, reason=f"measured {100 * gap:+.2f}% against a real CPU run (docs/python.md)"))
    model = zoo.build(name)
    args, kwargs = zoo.inputs(name, BATCH)
    before = _state(model)
    report = footprint.memory(model, input_data=_input_data(args, kwargs), train=train,
                              optimizer="adamw", impl="for-loop", device="cpu")
    assert _state(model) == before, "footprint changed the model"
    measured, ops = real.real_run(model, args, kwargs, train)
    trace = report._capture[1]
    if train:
        ours = trace.top_level_ops("forward", 0) + trace.top_level_ops("loss", 0)
        assert _as_on_meta(_setitem_as_on_cpu(ours)) == _as_on_meta(ops["iter1.forward"])
    else:
        ours = trace.top_level_ops("forward", 0)
        assert _as_on_meta(_setitem_as_on_cpu(ours)) == _as_on_meta(ops["inference"])
    record(f"{name} {train}", report.allocated_peak)
    error = (report.allocated_peak - measured) / measured
    print(f"{name} {'adamw' if train else 'inference'}: footprint {report.allocated_peak:,} "
          f"real {measured:,} error {100 * error:+.3f}%")
    assert abs(error) <= TOLERANCE, (
        f"{name}: footprint {report.allocated_peak:,} B, real {measured:,} B ({100 * error:+.2f}%)")
    assert report.gaps == []


@pytest.mark.parametrize("name", sorted(zoo.ALL))
def test_params_equal_numel(name):
    model = zoo.build(name)
    r = footprint.params(model)
    unique = {id(p): p for p in model.parameters()}  # tied weights once, as nn.Module does
    assert r.total_params == sum(p.numel() for p in unique.values())
    assert r.trainable_params == sum(p.numel() for p in unique.values() if p.requires_grad)
    assert r.param_bytes == sum(p.numel() * p.element_size() for p in unique.values())


# torch.utils.checkpoint around each of resnet18's four stages, as a user writes it: the
# recomputation runs in backward, where the meta tensors must still stand in the parameters (they
# did not before 2026-12-07: "Recomputed values ... have different metadata", the CPU weights).
# Measured 2026-12-07 at batch 16, 160 x 160, AdamW for-loop: non-reentrant -0.002% against the
# real CPU run (unchecked: 359,325,864 B; checkpointed: 335,754,592 B real). The reentrant form
# runs too, but is 1.84% short (342,450,344 B against 348,876,960 B), not yet explained.
class _Checkpointed(torch.nn.Module):
    def __init__(self, module, reentrant):
        super().__init__()
        self.module, self.reentrant = module, reentrant

    def forward(self, x):
        return torch.utils.checkpoint.checkpoint(self.module, x, use_reentrant=self.reentrant)


@pytest.mark.parametrize("reentrant", [False, True], ids=["non-reentrant", "reentrant"])
def test_activation_checkpointing_against_a_real_cpu_run(reentrant, request):
    if reentrant:
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="measured -1.84% against a real CPU run (see above)"))
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    for name in ("layer1", "layer2", "layer3", "layer4"):
        setattr(model, name, _Checkpointed(getattr(model, name), reentrant))
    x = torch.randn(16, 3, 160, 160)
    report = footprint.memory(model, input_data=x, train=True, optimizer="adamw",
                              impl="for-loop", device="cpu")
    measured, _ = real.real_run(model, [x], {}, True)
    record(f"checkpointed resnet18 {reentrant}", report.allocated_peak)
    error = (report.allocated_peak - measured) / measured
    assert abs(error) <= TOLERANCE, f"footprint {report.allocated_peak:,} B, real {measured:,} B"
