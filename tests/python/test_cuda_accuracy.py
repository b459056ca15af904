"""footprint.memory(model, ..., gpu="h200") against real runs on an H200: the 368 runs of the
sequence plan (tests/reference/cuda/h200-sequence.json, measured with `bench/cuda/measure.py
--plan sequence`; bench/cuda/README.md), and 126 runs of held-out shapes measured after the
rules fitted to it were written (h200-holdout.json: LSTMs and GRUs of other sizes, a mask whose
rows are not 16-aligned, a Linear-GELU-Dropout-Linear block of odd sizes). 18 models whose CUDA kernels differ from what a plain
meta run allocates: nn.TransformerEncoder, nn.MultiheadAttention, nn.LSTM, nn.GRU,
F.scaled_dot_product_attention by head dim (32, 64, 128, 256), boolean and additive masks and
dropout, F.interpolate, torchvision's ASPP and r3d_18, and transformers' GPT-2, BERT, a 1.1B
LLaMA, a small Mixtral and a small Qwen3. Each in inference and AdamW steps (foreach and fused),
in fp32, under bf16 autocast and in pure bf16, at batches 1, 8 and 64.

The models are built under torch.device("meta") from the harness's own table (measure.MODELS),
so the run costs no memory. A run passes when footprint's allocated and reserved peaks are within
0.5% of the GPU's (the CLI's CUDA test holds the same bar), else when they stay inside the
model's range in KNOWN, the errors measured now widened by half a point: a change that makes one
worse fails, and a fix shows as a range to tighten.
"""
import json
import os
import sys

import pytest
import torch

import footprint

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "cuda"))
import measure  # noqa: E402  the harness's table of models and input shapes
from figures import record  # noqa: E402

# The sequence plan, and the held-out shapes measured the next day for the rules fitted to it.
REFERENCES = [os.path.join(HERE, "..", "reference", "cuda", name)
              for name in ("h200-sequence.json", "h200-holdout.json")]
TOLERANCE = 0.005

# The runs footprint misses by more than 0.5% now, by model: (lowest, highest) error of the
# allocated and of the reserved peak, widened by half a point (None: within 0.5% that side).
KNOWN = {
    # cuDNN's convolution workspaces, which footprint does not model (docs/memory.md).
    "aspp_head": {"allocated": (-0.233, 0.071), "reserved": (-0.245, 0.121)},
    "interpolate_conv": {"allocated": (-0.219, None), "reserved": (-0.719, None)},
    "r3d_18": {"allocated": (-0.127, None), "reserved": (-0.216, 0.034)},
    # Grouped-query attention: fp32 goes to the math path, which keeps a little more on meta than
    # the real run's (+2.3% at batch 64); bf16 autocast training +2.6%. Not explained yet.
    "qwen3_small": {"allocated": (None, 0.031), "reserved": (-0.03, 0.049)},
    # cuDNN's RNN workspace is fitted to the measured shape (docs/memory.md): GRU +1.1% and -0.5%
    # at batch 1.
    "gru": {"allocated": (-0.01, 0.016), "reserved": (-0.248, 0.04)},
    # On held-out shapes that workspace is not right (its fixed part was 12.5 to 108 MiB where the
    # fit says 17.75 to 19.5): inference of 3 layers of 1024 at batch 1 -40%, 1 layer of 512 +9%.
    "lstm_h1024_t128_l3": {"allocated": (-0.403, 0.04), "reserved": (-0.322, 0.048)},
    "gru_h1024_t128_l3": {"allocated": (-0.38, 0.043), "reserved": (-0.386, 0.095)},
    "lstm_h512_t32_l1": {"allocated": (-0.056, 0.092), "reserved": (-0.069, 0.375)},
    "gru_h512_t32_l1": {"allocated": (-0.016, 0.103), "reserved": (-0.024, 0.412)},
    # The reserved peaks of models whose whole run is under 200 MB: the real allocator holds a
    # segment more or less at the peak (up to 23%, 5 to 10 MB). Not explained yet.
    "lstm": {"reserved": (-0.23, 0.066)},
    "bert_base": {"reserved": (None, 0.013)},  # +0.75%, one 20 MiB segment more at batch 8
    "llama_1b": {"reserved": (-0.012, None)},
    "multihead_attention": {"reserved": (None, 0.061)},
    "sdpa_bool_mask": {"reserved": (-0.027, 0.031)},
    "sdpa_float_mask": {"reserved": (-0.027, 0.031)},
    "sdpa_dropout": {"reserved": (-0.027, 0.031)},
    "transformer_encoder": {"reserved": (None, 0.025)},
}


def _runs():
    runs = []
    for path in REFERENCES:
        with open(path) as f:
            runs += [r for r in json.load(f)["runs"] if "allocated_peak" in r["repeats"][0]]
    return runs


RUNS = _runs()
MODELS = sorted({r["spec"]["model"] for r in RUNS})


def _within(error, known):
    lo, hi = known if known else (None, None)
    return (-TOLERANCE if lo is None else lo) <= error <= (TOLERANCE if hi is None else hi)


@pytest.mark.parametrize("model", MODELS)
def test_peaks_match_an_h200(model):
    builder, shape, kind, _ = measure.MODELS[model]
    with torch.device("meta"):
        m = builder()
    failures = []
    for run in (r for r in RUNS if r["spec"]["model"] == model):
        spec, measured = run["spec"], run["repeats"][0]
        size = (spec["batch"],) + tuple(shape)
        report = footprint.memory(
            m, input_size=[size], dtypes=[torch.int64] if kind == "tokens" else None,
            train=spec["mode"] == "train", optimizer=spec["optimizer"] or "adamw",
            impl=spec["impl"] or "auto", precision=spec["precision"], gpu="h200")
        record(f"{model} {spec['mode']} {spec['optimizer']} {spec['impl']} {spec['precision']} "
               f"{spec['batch']}", report.allocated_peak, report.reserved_peak)
        for what, ours, real in (("allocated", report.allocated_peak, measured["allocated_peak"]),
                                 ("reserved", report.reserved_peak, measured["reserved_peak"])):
            error = (ours - real) / real
            if not _within(error, KNOWN.get(model, {}).get(what)):
                failures.append(f"{spec['mode']} {spec['impl']} {spec['precision']} batch "
                                f"{spec['batch']} {what}: footprint {ours:,} B, the H200 {real:,} B "
                                f"({100 * error:+.2f}%)")
    assert not failures, f"{model}:\n" + "\n".join(failures)
