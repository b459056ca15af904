"""footprint on GGUF, ONNX and torch.export files that the formats' own tools wrote, held to what
the formats' own readers report (tests/gen/make_formats.py writes both):
  - `footprint params` of each GGUF file: every tensor's count, bytes and type equal GGUFReader's
    n_elements, n_bytes and tensor_type;
  - each ONNX file: the initializers' count and bytes equal onnx.load's, and the external data
    file is named;
  - each .pt2: the state_dict's count and bytes equal torch.export.load's; `footprint summary`
    counts each op with a cost as often as the exported graph calls it, and ends in its output
    shape; its MACs equal the TorchScript summary's for the same model (resnet18);
  - `footprint llm` of the Q4_K file at a context of 4096: the KV cache worked out by hand.

usage: formats_test.py FOOTPRINT_CLI MODELS_DIR
"""
import collections
import json
import os
import subprocess
import sys

CLI, MODELS = sys.argv[1], sys.argv[2]
DIR = os.path.join(MODELS, "formats")
with open(os.path.join(DIR, "expected.json")) as f:
    EXPECTED = json.load(f)
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def footprint(*args):
    p = subprocess.run([CLI, *args, "--format", "json"], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sys.exit(f"footprint {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return json.loads(p.stdout)


def params(name):
    out = footprint("params", os.path.join(DIR, name), "--tensors")
    return out[0] if isinstance(out, list) else out


for name in ("llama_f16.gguf", "llama_q8_0.gguf", "llama_q4_k.gguf"):
    r = params(name)
    exp = EXPECTED[name]
    tensors = {t["name"]: t for t in r["tensors"]}
    wrong = [n for n, e in exp["tensors"].items()
             if n not in tensors or tensors[n]["numel"] != e["numel"]
             or tensors[n]["bytes"] != e["bytes"]
             or tensors[n]["dtype"] not in (e["type"], {"F32": "float32", "F16": "float16"}.get(e["type"]))]
    check(not wrong and len(tensors) == len(exp["tensors"]),
          f"{name}: {len(tensors)} tensors, each with GGUFReader's count, bytes and type {wrong[:3]}")
    check(r["total"]["numel"] == exp["numel"] and r["total"]["bytes"] == exp["bytes"],
          f"{name}: {r['total']['numel']} weights in {r['total']['bytes']} bytes == GGUFReader's "
          f"{exp['numel']} in {exp['bytes']}")

# Every option goes through: --dtype fp16 counts 2 bytes a weight, whatever the ggml type (as
# dequantizing to fp16 does): 1,312,000 weights -> 2,624,000 bytes; --depth and --format csv.
r = footprint("params", os.path.join(DIR, "llama_q4_k.gguf"), "--dtype", "fp16", "--depth", "2")
check(r["total"]["bytes_at"]["fp16"] == 2 * EXPECTED["llama_q4_k.gguf"]["numel"] == 2624000,
      f"llama_q4_k.gguf --dtype fp16: {r['total']['bytes_at']['fp16']} bytes == 2 x 1,312,000")
check(any(m["path"] == "blk.0" and m["depth"] == 2 for m in r["modules"]),
      "llama_q4_k.gguf --depth 2: blk.0 is a module row at depth 2")
csv = subprocess.run([CLI, "params", os.path.join(DIR, "llama_q4_k.gguf"), "--format", "csv"],
                     capture_output=True, text=True)
check(csv.returncode == 0 and
      f"(model),,0,{EXPECTED['llama_q4_k.gguf']['numel']},0,{EXPECTED['llama_q4_k.gguf']['bytes']}"
      in csv.stdout, "llama_q4_k.gguf --format csv: the model row has GGUFReader's totals")

for name in ("resnet18.onnx", "encoder.onnx"):
    r = params(name)
    exp = EXPECTED[name]
    check(r["total"]["numel"] == exp["numel"] and r["total"]["bytes"] == exp["bytes"],
          f"{name}: {r['total']['numel']} elements in {r['total']['bytes']} bytes == onnx.load's "
          f"initializers {exp['numel']} in {exp['bytes']}")
    files = sorted({t.get("file", "") for t in r["tensors"]} - {""})
    check(files == exp["external"], f"{name}: external data {files} == {exp['external']}")

for name in ("resnet18.pt2", "encoder.pt2"):
    r = params(name)
    exp = EXPECTED[name]
    # state_dict holds the parameters and the persistent buffers: all of footprint's tensors here.
    check(r["total"]["numel"] == exp["numel"] and r["total"]["bytes"] == exp["bytes"],
          f"{name}: {r['total']['numel']} elements in {r['total']['bytes']} bytes == "
          f"torch.export.load's state_dict {exp['numel']} in {exp['bytes']}")
    check(r["parameters"]["numel"] == exp["parameters"],
          f"{name}: {r['parameters']['numel']} parameters == ExportedProgram.parameters() "
          f"{exp['parameters']}")
    s = footprint("summary", os.path.join(DIR, name), "--by", "op")
    graph_calls = collections.Counter()
    for op in exp["ops"]:
        t = op["target"]
        if t.startswith("aten."):
            parts = t.split(".")
            graph_calls["aten::" + parts[1]] += 1
    # by_op lists the ops with a cost rule (views and reshapes cost nothing and are not listed);
    # each must be called as often as the graph calls it, and every matrix op must be there.
    ours = {o["op"]: o["calls"] for o in s["by_op"]}
    diff = {k: (v, graph_calls.get(k)) for k, v in ours.items() if graph_calls.get(k) != v}
    compute = {k for k in graph_calls if k in ("aten::conv2d", "aten::linear", "aten::addmm",
                                               "aten::bmm", "aten::matmul", "aten::mm",
                                               "aten::baddbmm")}
    check(not diff and compute <= set(ours) and compute,
          f"{name}: summary's {len(ours)} ops are called as often as in the exported graph "
          f"{diff}, matrix ops {sorted(compute)} included")
    last = [op["shape"] for op in exp["ops"] if op["shape"] is not None][-1]
    root = s["modules"][0]
    check(root["output_shapes"] == [last],
          f"{name}: the model's output {root['output_shapes']} == the graph's last {last}")
    if name == "resnet18.pt2":
        ts = footprint("summary", os.path.join(MODELS, "resnet18.pt"), "--input", "1x3x224x224")
        check(s["forward"]["macs"] == ts["forward"]["macs"],
              f"{name}: {s['forward']['macs']} MACs == the TorchScript summary's "
              f"{ts['forward']['macs']}")

# memory runs a .pt2 through the Python package (docs/python.md): its resident parameters and
# buffers are the program's state_dict, as torch.export.load reads it. summary refuses a different
# --input than the program's.
p = subprocess.run([CLI, "memory", os.path.join(DIR, "encoder.pt2"), "--input", "2x16x64",
                    "--device", "cpu", "--format", "json"], capture_output=True, text=True,
                   timeout=300)
if p.returncode == 0:
    r = json.loads(p.stdout)
    resident = r["model_states"]["parameters"] + r["model_states"]["buffers"]
    expected_bytes = EXPECTED["encoder.pt2"]["bytes"]  # torch.export.load's state_dict
    check(resident == expected_bytes,
          f"memory encoder.pt2: parameters and buffers {resident} == the state_dict's {expected_bytes}")
else:
    check(False, f"memory encoder.pt2 --device cpu: exit {p.returncode}, {p.stderr.strip()!r}")
for args, expected in ((["summary", os.path.join(DIR, "encoder.pt2"), "--input", "1x16x64"],
                        "the program was exported for input 2x16x64"),):
    p = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300)
    check(p.returncode == 1 and p.stderr.count("\n") == 1 and expected in p.stderr,
          f"footprint {args[0]} on a .pt2 {args[2:]}: exit {p.returncode}, {p.stderr.strip()!r}")

# footprint llm on the Q4_K file at 4096 tokens: the KV cache is keys and values (2) x 2 layers
# x 2 KV heads x head dim 256 / 4 = 64 x 4096 tokens x 2 bytes (fp16) = 4,194,304 bytes; the
# weights are the file's, at its own quantization.
g = EXPECTED["llama_gguf"]
kv = 2 * g["layers"] * g["kv_heads"] * (g["hidden"] // g["heads"]) * 4096 * 2
r = footprint("llm", os.path.join(DIR, "llama_q4_k.gguf"), "--context", "4096")
check(r["kv_cache_bytes"] == kv == 4194304,
      f"llm llama_q4_k.gguf --context 4096: KV cache {r['kv_cache_bytes']} == {kv} by hand")
prefill = r["prefill"]
weights = prefill["peak"]["by_category"]["parameters"]
check(weights == EXPECTED["llama_q4_k.gguf"]["bytes"],
      f"llm llama_q4_k.gguf: parameters at the peak {weights} == the file's tensors "
      f"{EXPECTED['llama_q4_k.gguf']['bytes']} bytes")

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
