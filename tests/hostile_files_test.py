"""Nothing a downloaded file holds runs outside the sandbox (issue 33): torch.export programs
(.pt2) on every command, the Python engine's isolation, the same contract on the Python path as
on the engine path, the limits on every command, and the command's small promises (flags, CSV,
alignment, one JSON document).

Every hostile file is made here, at test time, by a script: a small module exported by the
pinned torch, then edited as an attacker would edit the archive's JSON. Every payload would only
create a marker file; the test holds each command to: the exit status of the README's table, one
escaped line on stderr for a failure, one JSON document on stdout with --format json, no marker,
and its time and memory bounds (cli_harness.py).

usage: hostile_files_test.py FOOTPRINT_CLI EXAMPLES_DIR WORK_DIR
"""
import hashlib
import json
import os
import pickle
import re
import shutil
import struct
import sys
import time
import unicodedata
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_harness import Cli, check, clean_line, expect, finish, parses, printable  # noqa: E402

CLI, EXAMPLES, WORK = sys.argv[1:4]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
footprint = Cli(CLI, WORK)
MARKER = os.path.join(WORK, "MARKER")


def no_marker(name):
    check(not os.path.exists(MARKER), f"{name}: the file's payload did not run (no marker)")
    if os.path.exists(MARKER):
        os.remove(MARKER)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x).relu()


STATIC = os.path.join(WORK, "static.pt2")
DYNAMIC = os.path.join(WORK, "dynamic.pt2")
torch.export.save(torch.export.export(Net(), (torch.randn(2, 4),)), STATIC)
torch.export.save(torch.export.export(Net(), (torch.randn(2, 4),),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},)), DYNAMIC)


def edited(name, base=STATIC, program=None, entries=None):
    """`base` with its program JSON changed by `program(json)` and entries replaced by
    entries[suffix](bytes)."""
    path = os.path.join(WORK, name + ".pt2")
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if program and info.filename.endswith("/models/model.json"):
                j = json.loads(data)
                program(j)
                data = json.dumps(j).encode()
            for suffix, change in (entries or {}).items():
                if info.filename.endswith(suffix):
                    data = change(data)
            out.writestr(info.filename, data)
    return path


def graph(j):
    return j["graph_module"]["graph"]


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def node(target, inputs, outputs):
    return {"target": target, "inputs": [{"name": n, "arg": a, "kind": 1} for n, a in inputs],
            "outputs": outputs, "metadata": {}}


def set_symbolic_expression(j):
    # A symbolic size whose expression torch.export.load would hand to sympy's eval.
    graph(j)["tensor_values"]["x"]["sizes"][0] = {
        "as_expr": {"expr_str": f"__import__('os').system('touch {MARKER}') or 2",
                    "hint": {"as_int": 2}}}


def pickled_weight(data):
    config = json.loads(data)
    config["config"]["fc.weight"]["use_pickle"] = True
    return json.dumps(config).encode()


def deep_stack(j):
    graph(j)["nodes"][0]["metadata"]["nn_module_stack"] = ";".join(
        f"k{i},m{i},T" for i in range(20000))


def node_chain(count, target, second, prefix):
    """`count` nodes of `target` between linear and relu, each reading the one before (and
    `second(previous)` as its second argument)."""
    def change(j):
        g = graph(j)
        prev, made = "linear", []
        for i in range(count):
            made.append(node(target, [("self", {"as_tensor": {"name": prev}}), second(prev)],
                             [{"as_tensor": {"name": f"{prefix}{i}"}}]))
            g["tensor_values"][f"{prefix}{i}"] = dict(g["tensor_values"]["linear"])
            prev = f"{prefix}{i}"
        g["nodes"][1]["inputs"][0]["arg"]["as_tensor"]["name"] = prev
        g["nodes"] = g["nodes"][:1] + made + g["nodes"][1:]
    return change


def view_chain(count):
    return node_chain(count, "torch.ops.aten.view.default", lambda _: ("size", {"as_ints": [2, 3]}), "v")


def add_flood(count):
    return node_chain(count, "torch.ops.aten.add.Tensor",
                 lambda prev: ("other", {"as_tensor": {"name": prev}}), "a")


def huge(dims):
    def change(j):
        graph(j)["tensor_values"]["linear"]["sizes"] = [{"as_int": d} for d in dims]
    return change


def first_node_calls(target, inputs):
    def change(j):
        g = graph(j)
        g["nodes"].insert(0, node(target, inputs, [{"as_tensor": {"name": "extra"}}]))
        g["tensor_values"]["extra"] = {"dtype": 7, "sizes": [{"as_int": 1 << 30}]}
    return change


def reads_nothing_made(j):
    graph(j)["nodes"][1]["inputs"][0]["arg"]["as_tensor"]["name"] = "never_made"


def escaped_names(j):
    n = graph(j)["nodes"][0]
    n["metadata"]["nn_module_stack"] = ("L__self__,,__main__.Net;k,fc\x1b[2J,"
                                        "torch.nn.Evil\x1b]0;pwned\x07Type")


# ---------------------------------------------------------------------------------- .pt2 files
# Each case: the file, and the exit status of params, summary, memory and fit (fit varies the
# batch, which only a program exported with a dynamic batch allows: 2, a usage error, for the
# static ones), with the line a failure names.
PT2 = [
    ("symbolic expression", edited("sym", program=set_symbolic_expression), (0, 1, 0, 0), None),
    ("pickled weight", edited("pickled", entries={
        "data/weights/model_weights_config.json": pickled_weight,
        "data/weights/weight_0": lambda d: pickle.dumps(Payload())}), (1, 1, 1, 1), None),
    ("pickled sample inputs", edited("sample", entries={
        "data/sample_inputs/model.pt": lambda d: pickle.dumps(Payload())}), (0, 0, 0, 2),
     None),
    ("20,000 nested modules", edited("deep", program=deep_stack), (0, 1, 1, 1),
     "nn_module_stack nests more than 64 modules"),
    ("a [2^62, 4] tensor", edited("huge62", program=huge([1 << 62, 4])), (1, 1, 1, 1),
     r"too large to model"),
    ("a [2^31, 2^31] tensor", edited("huge31", program=huge([1 << 31, 1 << 31])), (1, 1, 1, 1),
     r"too large to model"),
    ("aten::from_file", edited("from_file", program=first_node_calls(
        "torch.ops.aten.from_file.default",
        [("filename", {"as_string": "/etc/passwd"}), ("shared", {"as_bool": False}),
         ("size", {"as_int": 64})])), (0, 1, 1, 1), r"aten::from_file, which reads or writes a file"),
    ("a higher-order op", edited("cond", program=first_node_calls(
        "torch.ops.higher_order.cond", [("pred", {"as_bool": True})])), (0, 1, 1, 1),
     r"torch\.ops\.higher_order\.cond, which footprint does not run"),
    ("a value no node made", edited("unmade", program=reads_nothing_made), (0, 1, 1, 1),
     r"never_made"),
    ("2^30 floats on a device", edited("zeros", base=DYNAMIC, program=first_node_calls(
        "torch.ops.aten.zeros.default",
        [("size", {"as_ints": [1 << 30]}),
         ("device", {"as_device": {"type": "cuda", "index": 0}})])), (0, 1, 0, 0), None),
    ("escape codes in names", edited("names", program=escaped_names), (0, 0, 0, 2), None),
]
for name, path, statuses, line in PT2:
    for command, status in zip(("params", "summary", "memory", "fit"), statuses):
        args = [command, path] + (["--input", "4", "--gpu", "h100"] if command == "fit" else [])
        named = {1: line if command != "params" else None, 2: "static"}.get(status)
        expect(footprint, f".pt2 {name}: {command}", args, status, named)
        no_marker(f".pt2 {name}: {command}")

# The eval'd expression, a pickled weight and hostile sample inputs are never run, whatever the
# command; the run on meta of the zeros program made nothing real (its RSS bound above).
code, out, err = expect(footprint, ".pt2 run: memory names its modules", ["memory", STATIC,
                                                                          "--modules", "3"], 0)
check(code == 0 and json.loads(out).get("source", "").endswith("static.pt2"),
      ".pt2 memory runs without --input, at the exported shapes")

# A chain of views is read in linear time: 100,000 of them (47 MB of JSON) in seconds, and the
# reading stops at --time-limit.
chain = edited("views100000", program=view_chain(100000))
start = time.monotonic()
expect(footprint, ".pt2 100,000 views: summary", ["summary", chain], 0, max_seconds=20)
expect(footprint, ".pt2 100,000 views: summary --time-limit 0.1", ["summary", chain,
                                                                  "--time-limit", "0.1"], 1,
       r"took longer than 0\.1 s, the limit \(--time-limit\)", max_seconds=20)
# memory runs it in the Python engine, whose reading of 47 MB of JSON (a parsed JSON value takes
# about ten times its text) meets the default --max-memory of 1 GiB: it runs or is stopped, and
# either way stays inside the limit.
expect(footprint, ".pt2 100,000 views: memory", ["memory", chain], None, max_seconds=60,
       max_rss_mib=1024)
# 120,000 adds (60 MB of JSON; the reader takes at most 64 MiB): an op flood that the default
# limits hold under 1 GiB of resident memory.
flood = edited("adds120000", program=add_flood(120000))
code, out, err = expect(footprint, ".pt2 120,000 adds: memory, default limits", ["memory", flood],
                        None, max_seconds=60, max_rss_mib=1024)

# ------------------------------------------------------------------- the Python engine's start
# A downloaded model's folder with Python files that would stand in for the standard library's:
# the engine starts isolated (python -I), so none is imported.
hijack = os.path.join(WORK, "downloaded")
os.makedirs(hijack)
for module in ("argparse", "json", "inspect", "typing", "warnings", "dataclasses", "enum",
               "re", "linecache", "traceback"):
    with open(os.path.join(hijack, module + ".py"), "w") as f:
        f.write(f"open({MARKER!r}, 'w').write({module!r})\n")
shutil.copy(STATIC, os.path.join(hijack, "model.pt2"))
shutil.copy(os.path.join(EXAMPLES, "llm", "gpt2.json"), os.path.join(hijack, "config.json"))
expect(footprint, "cwd with argparse.py: memory model.pt2", ["memory", "model.pt2"], 0,
       cwd=hijack)
no_marker("cwd with argparse.py: memory model.pt2")
expect(footprint, "cwd with argparse.py: llm --path python", ["llm", "config.json", "--path",
                                                             "python", "--context", "64"], 0,
       cwd=hijack)
no_marker("cwd with argparse.py: llm --path python")
expect(footprint, "PYTHONPATH at the folder: ignored", ["memory", "model.pt2"], 0, cwd=hijack,
       env={"PYTHONPATH": hijack, "PYTHONSTARTUP": os.path.join(hijack, "json.py")})
no_marker("PYTHONPATH at the folder: ignored")

# ------------------------------------------------------------ the Python path's contract: FILE.py
# The user's own file runs as code (the help says so); footprint alone speaks on stdout and
# decides the exit status, and every failure is one escaped line.


def model_file(name, forward="        return self.fc(x)", factory=""):
    path = os.path.join(WORK, name + ".py")
    with open(path, "w") as f:
        f.write("import os, sys, torch\n"
                "class Net(torch.nn.Module):\n"
                "    def __init__(self):\n"
                "        super().__init__()\n"
                "        self.fc = torch.nn.Linear(4, 3)\n"
                "    def forward(self, x):\n"
                f"{forward}\n"
                f"def make():\n{factory or '    return Net()'}\n")
    return path


ESC = r"\x1b[2J\x1b]0;pwned\x07"
py = [
    ("print with escape codes", model_file("prints", f'        print("{ESC}owned")\n'
                                                     "        return self.fc(x)"), 0,
     r"footprint: the model prints: \\x1b\[2J\\x1b\]0;pwned\\x07owned"),
    ("raw writes to the descriptors", model_file("raw", '        os.write(1, b"\\x1b[2Jone\\n"); '
                                                        'os.write(2, b"\\x1b[2Jtwo\\n")\n'
                                                        "        return self.fc(x)"), 0, None),
    ("sys.exit(0) in the factory", model_file("exit0", factory="    sys.exit(0)"), 1,
     r"called sys\.exit\(0\)"),
    ("os._exit(0) in forward", model_file("osexit", "        os._exit(0)"), 1,
     r"ended the process"),
    ("KeyError in the factory", model_file("keyerror", factory="    return {}['x']"), 1,
     r"KeyError: 'x'"),
    ("raise with escape codes", model_file("raise", f'        raise ValueError("{ESC}bad")'), 1,
     r"\\x1b\[2J"),
]
for name, path, status, line in py:
    for command in ("memory", "fit"):
        args = [command, path + ":make", "--input", "2x4" if command == "memory" else "4",
                "--gpu", "h100", "--check"]
        code, out, err = expect(footprint, f"FILE.py {name}: {command}", args,
                                status if command == "memory" or status else 0, line)
        check(status != 0 or json.loads(out).get("error") is None,
              f"FILE.py {name}: {command}: stdout is the report alone")
syntax = os.path.join(WORK, "syntax.py")
with open(syntax, "w") as f:
    f.write("def broken(:\n")
expect(footprint, "FILE.py a SyntaxError", ["memory", syntax + ":Net", "--input", "2x4"], 1,
       r"SyntaxError")
os.makedirs(os.path.join(WORK, "folder.py"))
expect(footprint, "FILE.py a folder", ["memory", os.path.join(WORK, "folder.py") + ":Net",
                                       "--input", "2x4"], 1, r"not a file")
plain = model_file("plain")
expect(footprint, "--html into a folder", ["memory", plain + ":make", "--input", "2x4", "--html",
                                          WORK], 1, r"Is a directory|cannot write")
expect(footprint, "--html into a folder, .pt2", ["memory", STATIC, "--html", WORK], 1,
       r"Is a directory|cannot write")
# A grandchild that holds stdout and outlives the model: footprint ends it with the run.
fork = model_file("fork", "        if os.fork() == 0:\n            os.setsid()\n"
                          "            os.execv('/bin/sleep', ['sleep', '3600'])\n"
                          "        return self.fc(x)")
code, out, err = expect(footprint, "a forked grandchild", ["memory", fork + ":make", "--input",
                                                           "2x4", "--time-limit", "5"], 0,
                        max_seconds=15)
time.sleep(0.5)
left = [p for p in os.listdir("/proc") if p.isdigit() and
        open(f"/proc/{p}/cmdline", "rb").read().startswith(b"sleep\x003600")]
check(not left, f"a forked grandchild: no process outlives footprint ({left})")
hang = model_file("hang", "        while True:\n            pass")
expect(footprint, "a loop with no op, --time-limit 3", ["memory", hang + ":make", "--input", "2x4",
                                                        "--time-limit", "3"], 1,
       r"ran past the time limit of 3 s", max_seconds=12)

# transformers' own message about a config.json carries the config's text: escaped.
evil = os.path.join(WORK, "evil-config.json")
with open(os.path.join(EXAMPLES, "llm", "gpt2.json")) as f:
    config = json.load(f)
config["model_type"] = "qwen3"
config["architectures"] = ["Qwen3ForCausalLM"]
config["hidden_act"] = "\x1b]0;pwned\x07\x1b[2J"
with open(evil, "w") as f:
    json.dump(config, f)
expect(footprint, "transformers' message with escape codes", ["llm", evil, "--context", "16"], 1,
       None)
big = os.path.join(WORK, "big-config.json")
with open(big, "w") as f:
    f.write('{"model_type": "qwen3", "pad": "' + "x" * (17 << 20) + '"}')
expect(footprint, "a 17 MiB config on the python path", ["llm", big, "--path", "python"], 1,
       r"over the config-size limit")

# ---------------------------------------------------------------- the limits, on every command
TS = os.path.join(WORK, "adds.pt")


class Adds(torch.nn.Module):
    def forward(self, x):
        for _ in range(100000000):
            x = torch.add(x, 1)
        return x


torch.jit.script(Adds()).save(TS)
adds_py = model_file("adds", "        for _ in range(100000000):\n            x = torch.add(x, 1)\n"
                             "        return x")
adds_pt2 = edited("adds2000", program=add_flood(2000))
for name, model, extra in (("TorchScript", TS, []), ("FILE.py", adds_py + ":make", []),
                           (".pt2", adds_pt2, [])):
    for command in ("memory", "fit"):
        args = [command, model, "--max-ops", "1000", "--gpu", "h100"] + extra
        if name != ".pt2":
            args += ["--input", "2x4" if command == "memory" else "4"]
        if name == ".pt2" and command == "fit":
            continue  # the flood's batch is static
        expect(footprint, f"{name} {command} --max-ops 1000", args, 1,
               r"more than 1000 aten ops.*--max-ops")
cpu_py = model_file("cpu_tensor", "        y = torch.ones(1 << 28, device='cpu')\n"
                                  "        return self.fc(x) + y.sum()")
expect(footprint, "FILE.py --max-cpu-memory 1KiB", ["memory", cpu_py + ":make", "--input", "2x4",
                                                    "--max-cpu-memory", "1KiB"], 1,
       r"--max-cpu-memory")
prints_py = model_file("prints_drop", '        print("chatty")\n        return self.fc(x)')
code, out, err = expect(footprint, "FILE.py --model-output drop", ["memory", prints_py + ":make",
                                                                   "--input", "2x4",
                                                                   "--model-output", "drop"], 0)
check("chatty" not in err + out, f"FILE.py --model-output drop: nothing printed ({err!r})")


class Chatty(torch.nn.Module):
    def forward(self, x):
        print("chatty")
        return x * 2


chatty_ts = os.path.join(WORK, "chatty.pt")
torch.jit.script(Chatty()).save(chatty_ts)
for command, shape in (("memory", "2x4"), ("fit", "4")):
    for prints, says in (("stderr", True), ("drop", False)):
        code, out, err = expect(footprint, f"TorchScript {command} --model-output {prints}",
                                [command, chatty_ts, "--input", shape, "--gpu", "1GiB",
                                 "--model-output", prints], 0)
        check(("footprint: the model prints: chatty" in err) == says,
              f"TorchScript {command} --model-output {prints}: the prints go where asked ({err!r})")

# ------------------------------------------------------------------------ the small promises
usage = [
    (["memory", plain + ":make", "--input", "2x4", "--time-limit", "nan"], "nan"),
    (["llm", os.path.join(EXAMPLES, "llm", "gpt2.json"), "--train", "--lora", "8",
      "--lora-alpha", "nan"], "nan"),
    (["memory", plain + ":make", "--input", "2x4", "--context", "nan"], "nan"),
    (["memory", plain + ":make", "--input", "2x4", "--alloc-conf", "bogus:1"], "bogus"),
    (["memory", plain + ":make", "--input", "2x4", "--max-memory", "1B"], "1B"),
    (["memory", TS, "--input", "2x4"] + ["--html", TS], "model's file"),
    (["memory", plain + ":make"], "--input is required"),
]
before = hashlib.sha256(open(TS, "rb").read()).hexdigest()
for args, named in usage:
    code, out, err, _, _ = footprint(*args)
    check(code == 2 and named in err and clean_line(err),
          f"usage {' '.join(args[2:])}: exit 2, one line naming {named!r} ({code}; {err!r})")
check(hashlib.sha256(open(TS, "rb").read()).hexdigest() == before,
      "--html onto the model: the model file is unchanged")

# Every flag the help lists works on the Python path too.
for args, what in (
        (["summary", plain + ":make", "--input", "2x4", "--format", "csv"], "csv"),
        (["summary", plain + ":make", "--input", "2x4", "--format", "md"], "md"),
        (["summary", plain + ":make", "--input", "2x4", "--by", "op"], "by op"),
        (["summary", plain + ":make", "--input", "2x4", "--dtype", "bf16"], "dtype"),
        (["summary", plain + ":make", "--input", "2x4", "--columns", "torchstat"], "torchstat"),
        (["memory", plain + ":make", "--input", "2x4", "--format", "csv"], "csv"),
        (["memory", plain + ":make", "--input", "2x4", "--format", "md"], "md"),
        (["memory", plain + ":make", "--input", "2x4", "--train", "--loss", "mean-square",
          "--zero-grad", "zeros"], "loss"),
        (["memory", plain + ":make", "--input", "2x4", "--gpu", "t4", "--context", "300"],
         "context"),
        (["fit", plain + ":make", "--input", "4", "--gpu", "1GiB", "--format", "md"], "fit md")):
    code, out, err, _, _ = footprint(*args)
    check(code == 0 and out.strip() and printable(out),
          f"python path {' '.join(args[2:])}: works ({code}; {err[-200:]!r})")
code, out, err, _, _ = footprint("summary", plain + ":make", "--input", "2x4", "--format", "csv")
check(out.splitlines()[0].count(",") >= 3, f"python path summary --format csv is CSV: {out[:80]!r}")
code, out, err, _, _ = footprint("memory", plain + ":make", "--input", "2x4", "--gpu", "t4",
                                 "--context", "300", "--format", "json")
# --context 300: the CUDA context's 300 MiB, beside the allocator (a T4 holds 15,360 MiB).
check(code == 0 and json.loads(out)["device_overhead"] == 300 << 20,
      f"python path --context 300: the report's context is 300 MiB ({out[:120]!r})")

# --format json with a picture that cannot be written: one JSON document, the error.
code, out, err, _, _ = footprint("memory", TS, "--input", "2x4", "--max-ops", "100000000",
                                 "--html", os.path.join(WORK, "no-such-dir", "x.html"),
                                 "--format", "json")
check(code in (1, 2) and parses(out) and "error" in json.loads(out),
      f"--html that cannot be written, JSON: one document, the error ({out[:120]!r})")

# A safetensors file whose tensor names are a formula and wide characters.
names = ["=HYPERLINK(\"http://x\")", "+1+cmd|' /C calc'!A0", "层一.weight", "ｗｉｄｅ.bias",
         "é\u0301.x", "-2"]
header = {n: {"dtype": "F32", "shape": [2], "data_offsets": [8 * i, 8 * i + 8]}
          for i, n in enumerate(names)}
blob = json.dumps(header).encode()
st = os.path.join(WORK, "names.safetensors")
with open(st, "wb") as f:
    f.write(struct.pack("<Q", len(blob)) + blob + b"\0" * (8 * len(names)))
code, out, err, _, _ = footprint("params", st, "--tensors", "--format", "csv")
cells = [line.split(",")[0].strip('"') for line in out.splitlines()[1:]]
formulas = [c for c in cells if c[:1] in "=+@" or (c[:1] == "-" and c != "-2")]
check(code == 0 and not formulas and "'=HYPERLINK(" in out,
      f"params --format csv: no cell reads as a formula ({formulas})")


def columns(text):
    """Display columns, by Unicode's own tables (east_asian_width, combining)."""
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


code, out, err, _, _ = footprint("params", st, "--tensors")
rows = [line for line in out.splitlines() if any(line.startswith(n) for n in names[2:5])]
starts = {columns(line[:line.index("[2]")]) for line in rows}
check(code == 0 and len(rows) == 3 and len(starts) == 1,
      f"params --tensors: wide and combining names keep the shape column aligned ({starts})")

finish()
