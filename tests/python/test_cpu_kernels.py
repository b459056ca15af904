"""footprint.memory on modules whose CPU kernels are not the meta composite's, against real CPU
runs of the same modules in this process (tests/python/real.py: MEASUREMENT.md's profiler protocol,
one thread): inference and two AdamW training steps (the for-loop), at two batch sizes.

- nn.LSTM runs oneDNN's fused layer (mkldnn_rnn_layer, with its workspace, weight reorders and
  scratchpad), nn.GRU RNN.cpp's CPU branch, which projects the whole sequence through the input
  weights at once (docs/engine.md). The shapes are the ones the rules must generalize to:
  bidirectional layers with dropout between them, no bias, time-major input, hidden sizes that
  are not multiples of 16 and ones that are multiples of 256 (oneDNN's leading dimensions then
  take 16 more elements), a single row (oneDNN's inference then merges the layer GEMM over the
  steps), three layers, and one input unit. The sizes are oneDNN's, which differ before its
  release 3.9 (torch 2.9 bundles 3.7.1: docs/versions.md).
- Convolutions whose weight gradient oneDNN computes by GEMM (3-D kernels on a depth of 1 or 2
  with depth padding, a kernel wider than 14), beside ones its JIT kernels take (docs/memory.md).

Held to 0.01%: the errors measured are at most 144 B, in training only, the loss's and the
optimizer's small scalars (a plain nn.Linear misses 16 B).
"""
import pytest
import torch
import torch.nn as nn

import footprint
import real

TOLERANCE = 1e-4

# name -> (module, the input's shape after the batch; None marks the batch's place when it is not
# first)
CASES = {
    "lstm_bidirectional_dropout": (
        lambda: nn.LSTM(40, 50, num_layers=2, bidirectional=True, batch_first=True, dropout=0.2),
        (30, 40)),
    "lstm_no_bias_time_major": (lambda: nn.LSTM(64, 96, bias=False), (20, None, 64)),
    "lstm_three_layers_odd": (lambda: nn.LSTM(300, 17, num_layers=3, batch_first=True), (12, 300)),
    "lstm_256": (lambda: nn.LSTM(256, 256, num_layers=2, batch_first=True), (16, 256)),
    # One input unit: oneDNN's ldigo layout of the input weights is then the plain one, and the
    # forward in training reorders only the hidden weights.
    "lstm_one_input": (lambda: nn.LSTM(1, 300, batch_first=True), (8, 1)),
    "gru_bidirectional": (
        lambda: nn.GRU(40, 50, num_layers=2, bidirectional=True, batch_first=True), (30, 40)),
    "gru_odd": (lambda: nn.GRU(33, 70, num_layers=2, batch_first=True, dropout=0.1), (9, 33)),
    "conv3d_shallow": (lambda: nn.Sequential(
        nn.Conv3d(16, 128, 1), nn.Conv3d(128, 128, 3, padding=1), nn.ReLU(),
        nn.Conv3d(128, 64, 3, padding=1)), (16, 2, 12, 12)),
    "conv3d_depth1": (lambda: nn.Sequential(
        nn.Conv3d(32, 48, 3, padding=1), nn.ReLU(), nn.Conv3d(48, 32, 3, stride=2, padding=1)),
        (32, 1, 10, 10)),
    "conv3d_deep": (lambda: nn.Sequential(
        nn.Conv3d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv3d(32, 32, 3, padding=1)),
        (16, 3, 12, 12)),
    "conv2d_wide_kernel": (lambda: nn.Sequential(
        nn.Conv2d(8, 32, 3, padding=1), nn.Conv2d(32, 32, 15, padding=7)), (8, 20, 20)),
}


def _input(shape, batch):
    dims = tuple(batch if d is None else d for d in shape) if None in shape else (batch,) + shape
    return torch.randn(dims, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("train", [False, True], ids=["inference", "adamw"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", sorted(CASES))
def test_peak_matches_a_real_cpu_run(name, batch, train):
    build, shape = CASES[name]
    torch.manual_seed(0)
    model = build()
    x = _input(shape, batch)
    report = footprint.memory(model, input_data=[x], train=train, optimizer="adamw",
                              impl="for-loop", device="cpu")
    measured, ops = real.real_run(model, [x], {}, train)
    trace = report._capture[1]
    ours = trace.top_level_ops("forward", 0) + (trace.top_level_ops("loss", 0) if train else [])
    assert ours == ops["iter1.forward" if train else "inference"]
    error = (report.allocated_peak - measured) / measured
    print(f"{name} batch {batch} {'adamw' if train else 'inference'}: footprint "
          f"{report.allocated_peak:,} real {measured:,} error {100 * error:+.4f}%")
    assert abs(error) <= TOLERANCE, (
        f"{name}: footprint {report.allocated_peak:,} B, real {measured:,} B ({100 * error:+.3f}%)")
