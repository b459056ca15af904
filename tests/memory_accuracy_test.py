#!/usr/bin/env python3
"""Holds footprint's memory estimates against real runs measured by bench/cuda/measure.py as
../shared/MEASUREMENT.md says.

    python tests/memory_accuracy_test.py FOOTPRINT OUTDIR [--cuda] [--table FILE]

CPU (default): tests/reference/cpu/torch-MINOR.json for the torch of the Python that runs this
(2.9, 2.11, 2.13 and 2.15 are there; else torch-2.11.json, the pinned torch 2.11.0's), its
profiler, one thread, oneDNN at AVX-512 with bf16 (tools/measure_cpu_reference.py); inference (torch.inference_mode) and training steps with SGD, momentum, Adam and AdamW
(for-loop, PyTorch's CPU default) at batch 1 and 8, fp32, bf16 autocast for resnet18, eighteen
models: the ten of the 1.13 set and eight whose 2.x kernels differ from a plain meta run
(nn.TransformerEncoder, nn.MultiheadAttention, nn.LSTM, nn.GRU, F.scaled_dot_product_attention,
F.interpolate, 3-D and dilated convolutions). Compared: `footprint memory --device cpu`'s allocated
peak.

--cuda: every tests/reference/cuda/*.json (a real GPU; PyTorch 2.x). Compared: the allocated and
the reserved peak of `footprint memory --gpu GPU`, where GPU is footprint's profile of the measured
GPU (h200) or else its measured total, and whether it fits: a run that ran out of memory must be
called "does not fit", every other run "fits".

Each model is exported to TorchScript from the same code (OUTDIR). A run fails when its error is
beyond TOLERANCE: the accuracy reached so far, which only ever tightens.
"""
import concurrent.futures
import glob
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MEASURE = os.path.join(HERE, "..", "bench", "cuda", "measure.py")


def _cpu_reference():
    """The CPU runs measured with the torch of this Python (tests/reference/cpu/torch-MINOR.json:
    2.9, 2.11, 2.13, 2.15), else with the reference release, 2.11."""
    import torch
    minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    own = os.path.join(HERE, "reference", "cpu", f"torch-{minor}.json")
    return own if os.path.exists(own) else os.path.join(HERE, "reference", "cpu", "torch-2.11.json")


CPU_REFERENCE = os.environ.get("FOOTPRINT_CPU_REFERENCE") or _cpu_reference()
# The runs whose kernels footprint models are all within 0.37% (vit_b_16's SGD step at batch 8,
# docs/memory.md), so they are held to 0.5%, that no change makes them worse unseen. On CUDA a run
# within 0.5% passes; beyond, it must stay in its model's range below.
TOLERANCE = {"cpu": 0.005, "cuda": 0.005}

# CUDA (tests/reference/cuda/h200-vision.json, an H200): each model's range of errors now, for the
# allocated and the reserved peak, widened by half a point. What is left is cuDNN's convolution
# workspaces, which footprint does not model (docs/memory.md, "CUDA: measured on an H200"): vgg16's
# inference at batch 64 holds a 1.6 GB workspace beside an 822 MB activation; a workspace over
# 1 MiB opens a large-pool segment that stays cached, which is most of the reserved errors. A run
# outside its range fails, so a change that makes one worse shows; a fix shows as a range to
# tighten.
KNOWN_CUDA = {
    # Its reserved peak at batch 8 under bf16 autocast sits at a 40 MB segment: +3.51% (timm's copy
    # of the same network, measured apart, is -3.39% the other way).
    "convnext_tiny": {"allocated": (-0.01, 0.005), "reserved": (-0.1, 0.04)},
    "densenet121": {"allocated": (-0.015, 0.009), "reserved": (-0.047, 0.17)},
    "efficientnet_b0": {"allocated": (-0.025, 0.005), "reserved": (-0.037, 0.005)},
    "hybrid_network": {"allocated": (-0.051, 0.005), "reserved": (-0.362, 0.005)},
    "mobilenet_v2": {"allocated": (-0.035, 0.005), "reserved": (-0.122, 0.005)},
    "regnet_y_400mf": {"allocated": (-0.136, 0.005), "reserved": (-0.25, 0.041)},
    "resnet18": {"allocated": (-0.132, 0.005), "reserved": (-0.222, 0.135)},
    "resnet50": {"allocated": (-0.067, 0.007), "reserved": (-0.182, 0.016)},
    "swin_t": {"allocated": (-0.048, 0.007), "reserved": (-0.073, 0.033)},
    "timm_convnext_tiny": {"allocated": (-0.057, 0.009), "reserved": (-0.158, 0.03)},
    "timm_efficientnet_b0": {"allocated": (-0.025, 0.005), "reserved": (-0.033, 0.005)},
    "timm_vit_base_patch16_224": {"allocated": (-0.058, 0.006), "reserved": (-0.055, 0.017)},
    "vgg16": {"allocated": (-0.429, 0.006), "reserved": (-0.428, 0.017)},
    "vit_b_16": {"allocated": (-0.006, 0.01), "reserved": (-0.062, 0.072)},
}
# The fit calls footprint gets wrong now, each one batch past the measured limit: footprint's
# reserved peak at the limit is 0.27% (resnet50) and 1.53% (vit_b_16) under the GPU's, whose
# allocator fragments more near a full device.
KNOWN_WRONG_FITS = {("resnet50", 1711), ("vit_b_16", 1137)}

# CPU kernels footprint does not model yet (docs/memory.md, "Not modelled"): every run of such a
# model is held to the range of errors measured now, a little widened, so that a change that makes
# one worse fails, and one that fixes it shows (and the range is then tightened). None since the
# LSTM, the 3-D weight gradients and ASPP's list were modelled (2026-11-28).
KNOWN = {}


def input_text(spec):
    sys.path.insert(0, os.path.dirname(MEASURE))
    import measure  # noqa: E402  the harness's own table of models and shapes
    _, shape, kind, _ = measure.MODELS[spec["model"]]
    dims = "x".join(str(d) for d in (spec["batch"],) + tuple(shape))
    return dims + (":int64" if kind == "tokens" else "")


def gpu_profile(environment):
    """footprint's profile of the measured GPU (devices.cpp), by the name CUDA reports."""
    name = environment.get("device_name", "")
    for key, profile in (("H200", "h200"), ("H100", "h100")):
        if key in name:
            return profile
    return f"{environment['device_total'] / 2**20:.0f}MiB"


def main():
    footprint, outdir = sys.argv[1], sys.argv[2]
    cuda = "--cuda" in sys.argv
    table_out = sys.argv[sys.argv.index("--table") + 1] if "--table" in sys.argv else None
    files = [CPU_REFERENCE]
    if cuda:
        # The vision plan's reports; the sequence plan's (attention, RNNs, transformers models)
        # are held through the Python package (tests/python/test_cuda_accuracy.py).
        files = [f for f in sorted(glob.glob(os.path.join(HERE, "reference", "cuda", "*.json")))
                 if "--plan sequence" not in json.load(open(f)).get("command", "")]
    if not files:
        print("no CUDA measurements in tests/reference/cuda/: nothing to compare (bench/cuda/README.md)")
        sys.exit(77)
    rows, failures = [], []
    wrong_fits = []
    for path in files:
        ref = json.load(open(path))
        # On CUDA a run that ran out of memory is kept: footprint must say it does not fit.
        runs = [r for r in ref["runs"] if "error" not in r["repeats"][0] and (cuda or "oom" not in r["repeats"][0])]
        models = sorted({r["spec"]["model"] for r in runs})
        export = os.path.join(outdir, "models_" + os.path.basename(path)[:-5])
        subprocess.run([sys.executable, MEASURE, "--device", "cpu", "--models", ",".join(models),
                        "--export", export, "--export-only"], check=True)
        gpu = gpu_profile(ref["environment"]) if cuda else None
        def estimate(run):
            spec = run["spec"]
            cmd = [footprint, "memory", os.path.join(export, spec["model"] + ".pt"), "--input", input_text(spec),
                   "--format", "json", "--precision", spec.get("precision", "fp32")]
            cmd += ["--gpu", gpu] if cuda else ["--device", "cpu"]
            if spec["mode"] == "train":
                cmd += ["--train", "--optimizer", spec["optimizer"],
                        "--impl", {"forloop": "for-loop"}.get(spec["impl"], spec["impl"])]
            return cmd, subprocess.run(cmd, capture_output=True, text=True)

        # Two at a time: each command is one process on one core.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(estimate, runs))
        for run, (cmd, out) in zip(runs, results):
            spec = run["spec"]
            if not run["identical"]:
                # On CUDA 8 of 534 runs' repeats differ, by at most 0.15% of the allocated peak:
                # cuDNN took workspaces of other sizes (bench/cuda/README.md). More fails.
                peaks = [r.get("allocated_peak", 0) for r in run["repeats"]]
                if not cuda or (max(peaks) - min(peaks)) > 0.002 * max(peaks):
                    failures.append(f"{spec}: the measurement's repeats differ")
            if out.returncode != 0:
                failures.append(f"{' '.join(cmd)}: exit {out.returncode}: {out.stderr.strip()}")
                continue
            got = json.loads(out.stdout)
            measured = run["repeats"][0]
            if cuda:
                fits = "oom" not in measured
                known_wrong = (spec["model"], spec["batch"]) in KNOWN_WRONG_FITS
                if got["fits"] == fits and known_wrong:
                    print(f"{spec['model']} batch {spec['batch']}: the fit call is right now; "
                          "take it out of KNOWN_WRONG_FITS")
                if got["fits"] != fits and not known_wrong:
                    wrong_fits.append(f"{spec['model']} {spec['mode']} {spec['optimizer']} {spec.get('precision')} batch "
                                      f"{spec['batch']}: footprint says it {'fits' if got['fits'] else 'does not fit'}, "
                                      f"the GPU says it {'fits' if fits else 'ran out of memory'}")
                if not fits:
                    continue
            pairs = [("allocated", measured["allocated_peak"], got["allocated_peak"])]
            if cuda:
                pairs.append(("reserved", measured["reserved_peak"], got["reserved_peak"]))
            for what, m, e in pairs:
                error = (e - m) / m
                rows.append((spec, what, m, e, error))
                known = KNOWN_CUDA.get(spec["model"], {}).get(what) if cuda else KNOWN.get(spec["model"])
                if abs(error) <= TOLERANCE["cuda" if cuda else "cpu"]:
                    pass
                elif known:
                    if not known[0] <= error <= known[1]:
                        failures.append(f"{spec['model']} {spec['mode']} {spec['optimizer']} batch {spec['batch']}: "
                                        f"error {error:+.2%} outside its known range {known[0]:+.1%}..{known[1]:+.1%}")
                else:
                    failures.append(f"{spec['model']} {spec['mode']} {spec['optimizer']} {spec.get('precision')} "
                                    f"batch {spec['batch']} {what}: estimate {e}, measured {m}, error {error:+.2%}")
    lines = ["| model | run | precision | batch | peak | measured | footprint | error |",
             "|---|---|---|---:|---|---:|---:|---:|"]
    for spec, what, m, e, error in rows:
        run = "inference" if spec["mode"] == "inference" else spec["optimizer"]
        lines.append(f"| {spec['model']} | {run} | {spec.get('precision', 'fp32')} | {spec['batch']} | {what} | "
                     f"{m:,} | {e:,} | {error:+.2%} |")
    errors = [abs(r[4]) for r in rows]
    if errors:
        lines.append("")
        lines.append(f"{len(errors)} comparisons: median |error| {statistics.median(errors):.2%}, "
                     f"max {max(errors):.2%}; within 3%: {sum(e <= 0.03 for e in errors)}")
        for what in ("allocated", "reserved") if cuda else ():
            errs = [abs(r[4]) for r in rows if r[1] == what]
            lines.append(f"{what}: {len(errs)} runs, median |error| {statistics.median(errs):.2%}, max "
                         f"{max(errs):.2%}; within 0.5%: {sum(e <= 0.005 for e in errs)}, within 2%: "
                         f"{sum(e <= 0.02 for e in errs)}")
        modelled = [abs(r[4]) for r in rows if cuda or r[0]["model"] not in KNOWN]
        if modelled:
            lines.append(f"{len(modelled)} of them with modelled kernels: median |error| "
                         f"{statistics.median(modelled):.2%}, max {max(modelled):.2%}; "
                         f"within 1%: {sum(e <= 0.01 for e in modelled)}")
    if cuda:
        lines.append(f"fit calls: {len(wrong_fits)} wrong beyond the {len(KNOWN_WRONG_FITS)} known"
                     + "".join("\n- " + w for w in wrong_fits))
    print("\n".join(lines))
    if table_out:
        with open(table_out, "w") as f:
            f.write("\n".join(lines) + "\n")
    failures += wrong_fits
    if failures:
        print("\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
