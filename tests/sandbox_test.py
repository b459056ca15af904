"""The engine path against a stranger's model code, and the command line's exit statuses (issue 19).

Each hostile model is a small nn.Module scripted and saved by the pinned PyTorch here, then edited
the way an attacker edits a TorchScript zip: its forward in code/__torch__.py rewritten (and the
debug_pkl that maps the old code dropped). Nothing binary is committed. Every case runs
`footprint` (the command without LibTorch, which runs the engine as a child process) and checks:
  - the exit status of the README's table (0 ok, 1 file or model problem, 2 usage, 3 printed with
    gaps, 4 does not fit with --check);
  - a failure is exactly one line on stderr, with no raw control character and no C++ stack;
  - with --format json, stdout parses as JSON, whatever happened (a failure is {"error": ...});
  - the run stays inside its limits: wall time, and the peak RSS of the processes (os.wait4).

usage: sandbox_test.py FOOTPRINT_CLI MODELS_DIR EXAMPLES_DIR WORK_DIR
"""
import json
import os
import re
import subprocess
import sys
import time
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_harness import Cli, check, clean_line, finish, parses  # noqa: E402

CLI, MODELS, EXAMPLES, WORK = sys.argv[1:5]
os.makedirs(WORK, exist_ok=True)
footprint = Cli(CLI, WORK)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)


BASE = os.path.join(WORK, "base.pt")
torch.jit.script(Net()).save(BASE)


def edited(name, body, debug_pkl=None):
    """base.pt with forward's body replaced by `body` (TorchScript's serialized Python), and the
    debug_pkl that maps the old code dropped (or replaced by the bytes `debug_pkl`)."""
    path = os.path.join(WORK, name + ".pt")
    with zipfile.ZipFile(BASE) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("code/__torch__.py.debug_pkl"):
                if debug_pkl is None:
                    continue
                data = debug_pkl
            if info.filename.endswith("code/__torch__.py"):
                text = data.decode()
                data = (text[: text.index("    fc = self.fc")] + body).encode()
            out.writestr(zipfile.ZipInfo(info.filename, info.date_time), data)
    return path


def case(name, path, args, status, line=None, json_out=True, max_seconds=60, max_rss_mib=1500,
         env=None):
    """Runs `footprint summary PATH --input 2x4 ARGS --format json` and checks it."""
    cmd = ["summary", path, "--input", "2x4", *args] + (["--format", "json"] if json_out else [])
    code, out, err, seconds, rss = footprint(*cmd, env=env)
    check(code == status, f"{name}: exit status {code}, expected {status}; stderr: {err!r}")
    if status == 1:
        check(clean_line(err), f"{name}: one clean line on stderr: {err!r}")
    if line:
        check(re.search(line, err) is not None, f"{name}: stderr says /{line}/: {err!r}")
    if json_out:
        check(parses(out), f"{name}: stdout is JSON: {out[:200]!r}")
    check(seconds < max_seconds, f"{name}: {seconds:.1f} s, within {max_seconds} s")
    check(rss < max_rss_mib, f"{name}: peak RSS {rss:.0f} MiB, within {max_rss_mib} MiB")
    return code, out, err


# What every engine process costs here, for the bounds below: the base model, unedited.
code, out, err, base_seconds, base_rss = footprint("summary", BASE, "--input", "2x4")
check(code == 0, f"base model: exit 0 ({err!r})")
print(f"      the engine alone: {base_seconds:.1f} s, {base_rss:.0f} MiB RSS")
BOUND = base_rss + 300  # MiB: the engine plus what a capture may take (--max-cpu-memory 256MiB)

# Reading a file: refused before anything runs, naming the op and the line of code/ calling it.
code, out, err = case(
    "from_file",
    edited("from_file", '    y = torch.from_file("/etc/passwd", False, 64, dtype=0)\n'
                        "    return torch.add((self.fc).forward(x, ), torch.sum(y))\n"),
    [], 1, r"aten::from_file at code/__torch__\.py:\d+, which reads or writes a file",
    max_rss_mib=BOUND)
check("root:" not in out + err, "from_file: no byte of /etc/passwd is shown")

# torch.save from the model's code (a JIT-only op, not the dispatcher's).
case("save", edited("save", '    torch.save(x, "/tmp/footprint-sandbox-test-save")\n'
                            "    return (self.fc).forward(x, )\n"),
     [], 1, r"aten::save at code/__torch__\.py:\d+", max_rss_mib=BOUND)
check(not os.path.exists("/tmp/footprint-sandbox-test-save"), "save: no file was written")

# 2^30 floats on the CPU (4 GiB): made on meta instead, so the run costs nothing real.
case("zeros_cpu", edited("zeros_cpu", "    y = torch.zeros([1073741824])\n"
                                      "    return torch.add((self.fc).forward(x, ), torch.sum(y))\n"),
     [], 0, max_seconds=30, max_rss_mib=BOUND)
case("zeros_device_cpu",
     edited("zeros_device_cpu",
            '    y = torch.ones([1073741824], device=torch.device("cpu"))\n'
            "    return torch.add((self.fc).forward(x, ), torch.sum(y))\n"),
     [], 0, max_seconds=30, max_rss_mib=BOUND)

# A loop that never ends and runs no op: the parent stops the engine at --time-limit (+5 s grace).
case("hang", edited("hang", "    while True:\n      pass\n    return x\n"),
     ["--time-limit", "3"], 1, r"ran past the time limit of 3 s \(--time-limit\)", max_seconds=30,
     max_rss_mib=BOUND)
# A loop of adds: stopped by the op count, in the engine, with the op named.
case("adds", edited("adds", "    y = x\n    for i in range(100000000):\n"
                            "      y = torch.add(y, 1)\n    return y\n"),
     ["--max-ops", "100000"], 1, r"more than 100000 aten ops.*aten::add", max_rss_mib=BOUND)
# ... and by the default limits: the engine's memory (its trace grows about 800 B an op) stops
# it under 1 GiB of resident memory, the default --max-memory, before the 2,000,000 ops.
case("adds_default", os.path.join(WORK, "adds.pt"), [], 1,
     r"the engine's memory came within 64.00 MiB of 1.00 GiB, the limit \(--max-memory\).*aten::add",
     max_seconds=60, max_rss_mib=1024 + 16)
# The same loop, stopped by the in-engine clock (it runs ops, so it need not be killed).
case("adds_time", os.path.join(WORK, "adds.pt"), ["--time-limit", "2", "--max-ops", "1000000000",
                                                  "--max-memory", "4GiB"],
     1, r"ran longer than 2 s, the limit \(--time-limit\)", max_seconds=30, max_rss_mib=4096)

# A list that doubles 40 times in the interpreter (no aten op): the supervisor watches the
# engine's resident memory and stops it at --max-memory, one line, not a crash.
case("list_bomb", edited("list_bomb", "    y = [0]\n    for i in range(40):\n      y = y + y\n"
                                      "    return (self.fc).forward(x, )\n"),
     ["--max-memory", "2GiB"], 1,
     r"the engine's memory came within 64.00 MiB of 2GiB, the limit \(--max-memory\)",
     max_seconds=60, max_rss_mib=2048)

# print(): escape codes shown escaped, on stderr; stdout stays the JSON report.
esc = edited("print", '    print(chr(27) + "[2J" + chr(27) + "[31mowned\\nnext")\n'
                      "    return (self.fc).forward(x, )\n")
code, out, err = case("print", esc, [], 0, r"footprint: the model prints: \\x1b\[2J\\x1b\[31mowned\\nnext",
                      max_rss_mib=BOUND)
check("\x1b" not in out + err, "print: no raw escape byte reaches the terminal")
code, out, err = case("print_dropped", esc, ["--model-output", "drop"], 0, max_rss_mib=BOUND)
check("prints" not in err, f"print --model-output drop: nothing printed: {err!r}")
code, out, err, _, _ = footprint("summary", esc, "--input", "2x4")
check(code == 0 and "\x1b" not in out and "prints" not in out and "owned" not in out,
      "print, table output: the table alone on stdout")

# An exception whose message holds control characters: one line, escaped.
case("raise", edited("raise", "    if torch.gt(torch.numel(x), 0):\n"
                              '      ops.prim.RaiseException("bad" + chr(12) + "thing" + chr(27) + "[2J", '
                              '"builtins.RuntimeError")\n    return x\n'),
     [], 1, r"bad\\x0cthing\\x1b\[2J", max_rss_mib=BOUND)

# The engine fuzzer's first finding: code that does not compile, beside a debug_pkl that is not a
# pickle. LibTorch's error message reads the debug_pkl lazily, inside what(), and its exception
# there terminated the engine (SIGABRT). footprint loads no debug files.
case("debug_pkl", edited("debug_pkl", "    return undefined_name\n", debug_pkl=b"\x80\x02 not a pickle"),
     [], 1, r"cannot load it as TorchScript.*undefined_name", max_rss_mib=BOUND)

# A model made on a GPU: cuda:0 baked into its code runs on meta and gives the CPU-made summary.
def summary_json(path, *args):
    code, out, err, _, _ = footprint("summary", path, "--input", "2x4", "--format", "json", *args)
    return code, (json.loads(out) if parses(out) else {}), err


class Made(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.bn = torch.nn.BatchNorm1d(3)

    def forward(self, x):
        return self.bn(self.fc(x)) + torch.zeros(3, device=x.device)


cpu_trace = os.path.join(WORK, "trace_cpu.pt")
torch.jit.trace(Made().eval(), torch.randn(2, 4)).save(cpu_trace)
gpu_trace = os.path.join(WORK, "trace_cuda.pt")
with zipfile.ZipFile(cpu_trace) as src, zipfile.ZipFile(gpu_trace, "w") as out:
    edits = 0
    for info in src.infolist():
        data = src.read(info.filename)
        if info.filename.endswith(".debug_pkl"):
            continue
        if "/code/" in info.filename and info.filename.endswith(".py"):
            text = data.decode()
            edits += text.count('torch.device("cpu")')
            data = text.replace('torch.device("cpu")', 'torch.device("cuda:0")').encode()
        out.writestr(zipfile.ZipInfo(info.filename, info.date_time), data)
check(edits > 0, f"the trace's code names the device it ran on ({edits} places), now cuda:0")
c1, s1, e1 = summary_json(cpu_trace)
c2, s2, e2 = summary_json(gpu_trace)
strip = lambda s: {k: v for k, v in s.items() if k != "source"}
check(c1 == 0 and c2 == 0 and strip(s1) == strip(s2) and s1.get("modules"),
      f"a GPU-made trace gives the CPU-made summary ({c1}, {c2}; {e2!r})")

# The trace was made in eval mode: with --train its batch norm stays eval's, and footprint says so.
code, out, err, _, _ = footprint("summary", cpu_trace, "--input", "2x4", "--train")
check(code == 0 and re.search(r"warning: the file's code fixes aten::batch_norm to eval mode", err),
      f"an eval trace with --train: a warning line names what is frozen: {err!r}")
code, out, err, _, _ = footprint("summary", cpu_trace, "--input", "2x4")
check(code == 0 and "warning" not in err, f"an eval trace in inference: no warning: {err!r}")

# A crash inside the engine: a stand-in engine names aten::add on the status page, then dies by
# SIGSEGV as a LibTorch bug would. The parent reports one line and exit 1.
fake = os.path.join(WORK, "crashing-engine.py")
with open(fake, "w") as f:
    f.write(f"#!{sys.executable}\n"
            "import mmap, os, signal\n"
            "m = mmap.mmap(int(os.environ['FOOTPRINT_STATUS_FD']), 4096)\n"
            "m[:10] = b'aten::add\\0'\n"
            "print('{\"half\": ', flush=True)\n"
            "os.kill(os.getpid(), signal.SIGSEGV)\n")
os.chmod(fake, 0o755)
code, out, err = case("segv", BASE, [], 1,
                      r"base\.pt: the engine was killed by SIGSEGV while running aten::add$",
                      env={"FOOTPRINT_ENGINE": fake}, max_rss_mib=BOUND)
check(json.loads(out).get("error", "").endswith("aten::add") if parses(out) else False,
      f"segv: stdout holds the error object, not the half report: {out!r}")

# Bad sizes for llm: one line, before anything is built.
llama = os.path.join(EXAMPLES, "llm", "llama-7b.json")
code, out, err, _, _ = footprint("llm", llama, "--batch", "1073741824", "--context", "1073741824")
check(code == 1 and clean_line(err) and "too large to model" in err,
      f"llm with 2^30 x 2^30 tokens: one line: {err!r}")

# Usage errors exit 2; each names the flag.
usage = [
    (["memory", BASE, "--input", "2x4", "--gpu", "0GiB"], "0GiB"),
    (["memory", BASE, "--input", "2x4", "--gpu", "-5GiB"], "-5GiB"),
    (["memory", BASE, "--input", "2x4", "--gpu", "h900"], "h900"),
    (["memory", BASE, "--input", "2x4", "--train", "--optimizer", "adamq"], "adamq"),
    (["memory", BASE, "--input", "2x4", "--optimizer", "sgd"], "--train"),
    (["memory", BASE, "--input", "2x4", "--context", "-100"], "--context"),
    (["memory", BASE, "--input", "2x4", "--device", "cpu", "--gpu", "t4"], "--gpu 't4' names a GPU"),
    (["memory", BASE, "--input", "2x4", "--check"], "--gpu"),
    (["fit", BASE, "--input", "4"], "--gpu"),
    (["llm", llama, "--lora", "8"], "--train"),
    (["llm", llama, "--train", "--weights", "int4"], "--weights"),
    (["summary", BASE, "--input", "2x4", "--max-cpu-memory", "lots"], "lots"),
]
for args, named in usage:
    code, out, err, _, _ = footprint(*args)
    check(code == 2 and named in err, f"usage {' '.join(args[:1] + args[2:])}: exit 2 naming "
                                      f"{named!r} ({code}; {err.strip()!r})")

# 3: printed with gaps (aten::logit has no meta kernel in LibTorch 2.11), for memory as summary.
no_meta = os.path.join(MODELS, "no_meta_kernel.pt")
for cmd in (["summary", no_meta, "--input", "3x4"], ["memory", no_meta, "--input", "3x4"]):
    code, out, err, _, _ = footprint(*cmd)
    check(code == 3 and "aten::logit" in err, f"{cmd[0]} with a guessed op: exit 3 naming it ({code})")

# 4: --check when it does not fit; 0 when it does. The model's peak is a few KiB.
for gpu, status in (("1GiB", 0), ("64B", 4)):  # its CPU peak: 116 B (60 B of weights, 32 of input)
    code, out, err, _, _ = footprint("memory", BASE, "--input", "2x4", "--device", "cpu", "--gpu",
                                     gpu, "--check")
    check(code == status, f"memory --check on {gpu}: exit {code}, expected {status}")
# LLaMA-7B at 8,192 tokens: 12.55 GiB of fp16 weights and a 4.00 GiB cache (8,192 x 32 layers x
# 2 x 4,096 x 2 B) do not fit a T4's 15 GiB. The columns are the peak on a device large enough.
code, out, err, _, _ = footprint("llm", llama, "--gpu", "t4", "--context", "8192", "--check")
check(code == 4, f"llm llama-7b in fp16 at 8,192 tokens on a T4 with --check: exit 4 ({code})")
rows = [l.split() for l in out.splitlines() if l.startswith(("prefill ", "decode "))]
check(len(rows) == 2 and all(r[3:7] == ["12.55", "GiB", "4.00", "GiB"] for r in rows),
      f"llm on a T4, not fitting: weights and KV cache at the peak, as on a large device: {rows}")
check(re.search(r"prefill: the allocator runs out of memory at a request of [\d.]+ [KMG]iB", out),
      "llm on a T4, not fitting: the request that fails is named")
code, out, err, _, _ = footprint("llm", llama, "--gpu", "h100", "--check")
check(code == 0, f"llm llama-7b on an H100 with --check: exit 0 ({code})")

# A name taken from a file is shown escaped, on one line, in every format but JSON (which escapes
# it its own way): a safetensors tensor named with ESC, a form feed and a newline.
import struct
name = "evil\x1b[2J\x0cname\nnext"
header = json.dumps({name: {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
evil = os.path.join(WORK, "evil.safetensors")
with open(evil, "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + b"\0" * 8)
for fmt in ("table", "csv", "md"):
    code, out, err, _, _ = footprint("params", evil, "--tensors", "--format", fmt)
    check(code == 0 and "\x1b" not in out and "\x0c" not in out and r"evil\x1b[2J\x0cname\nnext" in out,
          f"params --format {fmt}: the tensor's name escaped: {out!r}")
code, out, err, _, _ = footprint("params", evil, "--tensors", "--format", "json")


def strings(o):
    if isinstance(o, str):
        yield o
    elif isinstance(o, dict):
        for k, v in o.items():
            yield k
            yield from strings(v)
    elif isinstance(o, list):
        for v in o:
            yield from strings(v)


check(code == 0 and parses(out) and name in set(strings(json.loads(out))),
      "params --format json: the name exact, in JSON's own escapes")

# Every help names only files that ship: docs/*.md of the repository (installed in
# share/doc/footprint/), never a path outside it.
ROOT = os.path.dirname(os.path.abspath(EXAMPLES))
for cmd in ([], ["params"], ["summary"], ["memory"], ["fit"], ["llm"]):
    code, out, err, _, _ = footprint(*cmd, "--help")
    named = set(re.findall(r"[\w./-]*\.md\b", out))
    check(code == 0 and (named or not cmd) and all(n.startswith("docs/") and os.path.exists(os.path.join(ROOT, n))
                                      for n in named) and "../" not in out,
          f"footprint {' '.join(cmd)} --help names only shipped files: {sorted(named)}")

# Ten hostile TorchScript files, as a user would receive them, with the default flags: each is
# refused or summarized within 60 s and 1.5 GiB of resident memory (--time-limit 40 s and 5 s of
# grace; --max-memory 1 GiB, watched every 10 ms).
ten = [
    ("from_file", 1), ("save", 1), ("zeros_cpu", 0), ("hang", 1), ("adds", 1), ("list_bomb", 1),
    ("print", 0), ("raise", 1), ("debug_pkl", 1), ("fork", 1),
]
named = {"fork": r"prim::fork .*runs code on another thread", "list_bomb": r"--max-memory",
         "adds": r"--max-memory", "hang": r"--time-limit", "from_file": r"aten::from_file"}


class Forks(torch.nn.Module):
    def forward(self, x):
        fut = torch.jit.fork(torch.add, x, 1)
        return torch.jit.wait(fut)


torch.jit.script(Forks()).save(os.path.join(WORK, "fork.pt"))
for name, status in ten:
    case(f"default flags: {name}", os.path.join(WORK, name + ".pt"), [], status, named.get(name),
         max_seconds=60, max_rss_mib=1536)

finish()
