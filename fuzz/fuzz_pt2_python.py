"""A mutation fuzzer for the Python path's .pt2 loading: footprint's reader (through
_core.read_pt2) and the runner that builds the program's module and runs its graph on meta
(python/footprint/_pt2.py), the code `footprint memory|fit FILE.pt2` runs.

The seeds are programs torch.export writes here (a Linear and a BatchNorm1d in training with a
symbolic batch, and a small ResNet block); each mutant changes one program's JSON, structurally
(a number made extreme, a reference renamed, a node dropped, doubled or swapped, an argument's
kind changed, a string given escape codes, a symbolic size, a nesting) or as bytes, and is zipped
back into a .pt2. Workers load each file and run it on meta; one in ten also goes through
footprint.memory, inside the capture session's sandbox.

A finding is a worker that dies, a file that takes more than 10 s, or an exception other than the
clean ones a user gets as one line: ValueError (footprint's), and RuntimeError, TypeError,
IndexError, NotImplementedError, OverflowError and ZeroDivisionError from the ops and the size
arithmetic the program asks for. Findings are kept in WORK/findings/.

usage: PYTHONPATH=build/python python fuzz/fuzz_pt2_python.py WORK [FILES] [SEED]
"""
import copy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import traceback
import zipfile

CLEAN = ("ValueError", "ModelError", "RuntimeError", "TypeError", "IndexError",
         "NotImplementedError", "OverflowError", "ZeroDivisionError")
EXTREME = [0, -1, 1, 2, 7, 63, 64, 1 << 31, (1 << 31) - 1, 1 << 62, (1 << 63) - 1, -(1 << 63),
           1 << 64, 3.5, -0.0, 1e308, "NaN", "Infinity", None, True, [], {}, "x"]
TEXT = ["\x1b[2J", "\x1b]0;pwned\x07", "a,b;c", "", "Symbol('s0', positive=True)", "s0 + 1",
        "__import__('os')", "torch.ops.aten.from_file.default", "torch.ops.aten.add.Tensor",
        "_operator.pow", "torch.ops.higher_order.cond", "x" * 1000]


def seeds(work):
    import torch
    import torchvision

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)
            self.bn = torch.nn.BatchNorm1d(3)

        def forward(self, x):
            return self.bn(self.fc(x)).relu().view(x.shape[0] * 3)

    block = torchvision.models.resnet.BasicBlock(4, 4)
    made = []
    for name, model, x, dyn in (
            ("net", Net().train(), torch.randn(2, 4), {0: torch.export.Dim("b", min=2, max=64)}),
            ("block", block.train(), torch.randn(2, 4, 8, 8), None)):
        path = os.path.join(work, name + ".pt2")
        torch.export.save(torch.export.export(model, (x,), dynamic_shapes=(dyn,) if dyn else None),
                          path)
        made.append(path)
    return made


def archive(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def places(o, trail=()):
    """Every (container, key) in a JSON value, for mutating in place."""
    if isinstance(o, dict):
        for k, v in o.items():
            yield o, k
            yield from places(v, trail + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield o, i
            yield from places(v, trail + (i,))


def mutate(program, rng):
    j = copy.deepcopy(program)
    names = [c[k] for c, k in places(j) if isinstance(c[k], str)]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        c, k = rng.choice(list(places(j)))  # anew: a mutation before may have moved things
        v = c[k]
        kind = rng.random()
        if isinstance(v, bool) or v is None:
            c[k] = rng.choice(EXTREME)
        elif isinstance(v, (int, float)):
            c[k] = rng.choice(EXTREME) if kind < 0.8 else v + rng.choice((-1, 1))
        elif isinstance(v, str):
            c[k] = rng.choice(names) if kind < 0.5 else rng.choice(TEXT) if kind < 0.8 else v + rng.choice(TEXT)
        elif isinstance(v, list):
            if v and kind < 0.3:
                del v[rng.randrange(len(v))]
            elif v and kind < 0.6:
                v.insert(rng.randrange(len(v) + 1), copy.deepcopy(rng.choice(v)))
            elif len(v) > 1 and kind < 0.8:
                a, b = rng.sample(range(len(v)), 2)
                v[a], v[b] = v[b], v[a]
            else:
                c[k] = [v] if kind < 0.9 else rng.choice(EXTREME)
        elif isinstance(v, dict):
            keys = list(v)
            if keys and kind < 0.4:
                del v[rng.choice(keys)]
            elif keys and kind < 0.7:  # an argument of another kind: as_tensor -> as_int, ...
                key = rng.choice(keys)
                v[rng.choice(("as_int", "as_ints", "as_tensor", "as_tensors", "as_none",
                              "as_float", "as_sym_int", "as_string", "as_device", "as_expr",
                              "as_scalar_type", "as_graph"))] = v.pop(key)
            else:
                c[k] = rng.choice(EXTREME)
    text = json.dumps(j)
    if rng.random() < 0.15:  # bytes, too
        b = bytearray(text.encode())
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(b))
            op = rng.random()
            if op < 0.4:
                b[at] = rng.randrange(256)
            elif op < 0.7:
                del b[at]
            else:
                b.insert(at, rng.choice(b'{}[]",:0123456789-e'))
        return bytes(b)
    return text.encode()


def write(path, entries, program_bytes):
    with zipfile.ZipFile(path, "w") as out:
        for name, data in entries:
            out.writestr(name, program_bytes if name.endswith("/models/model.json") else data)


def worker(batch_dir, out_path):
    """Loads and runs each file of the batch; writes one line of JSON per finding."""
    import torch
    import footprint
    from footprint import _pt2

    def alarm(*_):
        raise TimeoutError("more than 10 s")
    signal.signal(signal.SIGALRM, alarm)
    findings, counts = [], {"loaded": 0, "ran": 0}
    for i, name in enumerate(sorted(os.listdir(batch_dir))):
        path = os.path.join(batch_dir, name)
        signal.alarm(10)
        try:
            p = _pt2.load(path)
            counts["loaded"] += 1
            shapes = [tuple(s) for s, _ in p.inputs]
            dtypes = [d for _, d in p.inputs]
            if i % 10 == 0:
                footprint.memory(p, input_size=shapes, dtypes=dtypes, train=bool(i % 20), gpu="h100")
            else:
                inputs = [torch.empty(s, dtype=d, device="meta") for s, d in zip(shapes, dtypes)]
                with torch.no_grad():
                    p(*inputs)
            counts["ran"] += 1
        except BaseException as e:  # noqa: B902: a fuzzer keeps every kind
            if type(e).__name__ not in CLEAN or isinstance(e, TimeoutError):
                findings.append({"file": name, "error": type(e).__name__, "message": str(e)[:300],
                                 "trace": traceback.format_exc()[-2000:]})
        finally:
            signal.alarm(0)
    with open(out_path, "w") as f:
        json.dump({"findings": findings, "counts": counts}, f)


def main():
    if sys.argv[1] == "--worker":
        return worker(sys.argv[2], sys.argv[3])
    work = sys.argv[1]
    files = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    os.makedirs(work, exist_ok=True)
    findings_dir = os.path.join(work, "findings")
    os.makedirs(findings_dir, exist_ok=True)
    bases = []
    for path in seeds(work):
        entries = archive(path)
        program = json.loads(next(d for n, d in entries if n.endswith("/models/model.json")))
        bases.append((entries, program))
    batch, done, found, start, totals = 500, 0, 0, time.monotonic(), {}
    while done < files:
        batch_dir = os.path.join(work, "batch")
        shutil.rmtree(batch_dir, ignore_errors=True)
        os.makedirs(batch_dir)
        n = min(batch, files - done)
        for i in range(n):
            entries, program = rng.choice(bases)
            write(os.path.join(batch_dir, f"{done + i:07d}.pt2"), entries, mutate(program, rng))
        out = os.path.join(work, "batch.json")
        if os.path.exists(out):
            os.remove(out)
        proc = subprocess.run([sys.executable, __file__, "--worker", batch_dir, out],
                              capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0 or not os.path.exists(out):
            found += 1
            kept = os.path.join(findings_dir, f"batch-{done:07d}")
            shutil.copytree(batch_dir, kept)
            print(f"finding: a worker ended with status {proc.returncode}: {proc.stderr[-500:]}"
                  f" (batch kept in {kept})", flush=True)
        else:
            result = json.load(open(out))
            for k, v in result["counts"].items():
                totals[k] = totals.get(k, 0) + v
            for f in result["findings"]:
                found += 1
                shutil.copy(os.path.join(batch_dir, f["file"]), findings_dir)
                print(f"finding: {f['file']}: {f['error']}: {f['message']}\n{f['trace']}",
                      flush=True)
        done += n
        print(f"{done} files ({totals.get('loaded', 0)} read, {totals.get('ran', 0)} ran to the "
              f"end), {found} findings, {time.monotonic() - start:.0f} s", flush=True)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
