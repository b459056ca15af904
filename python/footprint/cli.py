"""`footprint summary|memory|fit MODEL` for models that are Python code: a file and the class or
factory in it (model.py:Net, as torchstat's -f file.py -m Net), and `footprint memory|fit` for a
torch.export program (.pt2); `footprint llm --path python` for transformers' own code.

The C++ command runs this as its engine for such models, as `python -I` (no working directory on
the path, no user site, no PYTHON* variables) under the same limits as its own engine: address
space, CPU time, wall time, ops, CPU memory (engine()). A FILE.py is the user's own code and runs
as code: its import and factory run in this process. A .pt2 is data: footprint's own reader reads
it, and its graph runs op by op on meta (_pt2.py). Every other file goes to the C++ command
(footprint/bin/footprint in a wheel). The model is built under torch.device("meta"), so its
weights take no memory.
"""
import argparse
import importlib.util
import inspect
import json
import os
import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INEXACT, EXIT_NO_FIT = 0, 1, 2, 3, 4
# The line the engine ends its report with, for the C++ command to take its status from
# (run_engine in tools/footprint/command.cpp): footprint alone decides the exit status, whatever the
# model's code does to the process.
STATUS_MARK = "\0footprint-exit "


class Usage(Exception):
    pass


def escape(text):
    """Text from a model or a file as one line a terminal shows safely: the C++ escape_text."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    try:
        from . import _core
        return _core.escape_text(text)
    except ImportError:  # torch itself does not import: escape all that is not plain ASCII
        return text.encode("ascii", "backslashreplace").decode("ascii").replace("\n", "\\n")


def is_python_model(arg):
    path = arg.rsplit(":", 1)[0] if ".py:" in arg else arg
    return path.endswith(".py") or path.endswith(".pt2")


def load_model(spec, seconds=0.0):
    """model.py:Name (a Module class, or a function returning a module) or program.pt2."""
    import torch
    if spec.endswith(".pt2"):
        from . import _pt2
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"{spec}: no such file")
        return _pt2.load(spec, seconds), spec
    path, _, name = spec.partition(":")
    if not path.endswith(".py"):
        raise Usage(f"{spec}: expected FILE.py:NAME (a class or factory in the file) or a .pt2")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file" if not os.path.exists(path)
                                else f"{path}: not a file")
    module_name = "footprint_model_" + os.path.splitext(os.path.basename(path))[0]
    loader = importlib.util.spec_from_file_location(module_name, path)
    code = importlib.util.module_from_spec(loader)
    # The user's own file, run as code: its folder is on the path for its own imports, after the
    # standard library and torch's, so that a json.py beside it cannot stand in for them.
    sys.path.append(os.path.dirname(os.path.abspath(path)))
    sys.modules[module_name] = code
    with torch.device("meta"):  # module-level tensors, too, take no memory
        loader.loader.exec_module(code)
    if not name:
        found = [n for n, v in vars(code).items()
                 if inspect.isclass(v) and issubclass(v, torch.nn.Module) and v.__module__ == module_name]
        if len(found) != 1:
            raise Usage(f"{path}: name the model as {path}:NAME; the file defines "
                        f"{', '.join(found) or 'no nn.Module class'}")
        name = found[0]
    if not hasattr(code, name):
        raise Usage(f"{path}: has no {name}; it defines "
                    f"{', '.join(n for n in vars(code) if not n.startswith('_'))}")
    factory = getattr(code, name)
    if not callable(factory):
        raise Usage(f"{path}:{name} is a {type(factory).__name__}, not a class or function")
    with torch.device("meta"):
        model = factory()
    if not isinstance(model, torch.nn.Module):
        raise Usage(f"{path}:{name}() returned a {type(model).__name__}, not an nn.Module")
    return model, f"{path}:{name}"


def parse_input(text):
    """"8x3x224x224" or "8x128:int64", several joined by ';': what --input takes."""
    shapes, dtypes = [], []
    for part in text.split(";"):
        dims, _, dtype = part.partition(":")
        try:
            shape = tuple(int(d) for d in dims.lower().replace(",", "x").split("x"))
        except ValueError:
            raise Usage(f"--input {text}: {part!r} is not a shape such as 8x3x224x224") from None
        if any(d < 0 for d in shape):
            raise Usage(f"--input {text}: dimensions must not be negative")
        shapes.append(shape)
        dtypes.append(dtype or None)
    return shapes, dtypes


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (exit 2), never argparse's usage block."""

    def error(self, message):
        raise Usage(message)


def _choices(option):
    """An option's names, from the planner's table (footprint/plan.h) through the binding."""
    from . import _core
    return [name for name, _ in _core.choices(option)]


_ENGINE_FLAGS = ("--max-memory", "--time-limit", "--max-cpu-memory", "--max-ops",
                 "--model-output")


def build_parser():
    """The flags of the C++ command's summary, memory and fit (tools/footprint/cmd_*.cpp), which
    checks their values before it runs this engine."""
    p = _Parser(prog="footprint", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, text in (("summary", "module table with shapes, FLOPs and activations"),
                       ("memory", "peak memory of inference or a training step"),
                       ("fit", "the largest batch that fits a GPU")):
        c = sub.add_parser(name, help=text)
        c.add_argument("model", help="model.py:Class (or :factory), or program.pt2")
        c.add_argument("--input", action="append", default=[],
                       help="input shape(s): 8x3x224x224, 8x128:int64; fit: one sample's, 3x224x224")
        c.add_argument("--format", default="table", choices=["table", "json", "csv", "md"])
        if name == "summary":
            c.add_argument("--train", action="store_true")
            c.add_argument("--dtype", default=None, choices=["fp32", "fp16", "bf16", "fp64"])
            c.add_argument("--depth", type=int, default=3)
            c.add_argument("--by", default="module", choices=["module", "op"])
            c.add_argument("--columns", default="default", choices=["default", "torchstat"])
        else:
            c.add_argument("--device", default="cuda", choices=_choices("device"))
            c.add_argument("--train", action="store_true", default=(name == "fit"))
            c.add_argument("--optimizer", default="adamw", choices=_choices("optimizer"))
            c.add_argument("--impl", default="auto", choices=_choices("impl"))
            c.add_argument("--precision", default="fp32", choices=_choices("precision"))
            c.add_argument("--loss", default="auto", choices=_choices("loss"))
            c.add_argument("--zero-grad", default="none", choices=_choices("zero-grad"))
            c.add_argument("--gpu", default=None, required=(name == "fit"))
            c.add_argument("--context", type=float, default=None)
            c.add_argument("--alloc-conf", default="")
            c.add_argument("--check", action="store_true")
            c.add_argument("--html", default=None)
            c.add_argument("--snapshot", default=None)
            if name == "memory":
                c.add_argument("--modules", type=int, default=8)
                c.add_argument("--method", default="footprint", choices=["footprint", "seed"])
        c.add_argument("--guess", action="append", default=None, metavar="OP",
                       help="run OP (ns::op), which has no meta implementation, with an output "
                            "shaped like its first input; the report says so")
        # The engine's limits, which the C++ command passes on; engine() applies them.
        for flag in _ENGINE_FLAGS:
            c.add_argument(flag, default=None, help=argparse.SUPPRESS)
    return p


# The C++ path's options that the Python path (transformers' own code) does not have: the
# quantization group (int8/int4 weights are the C++ path's), the attention kernel (the python path
# runs the config's attn_implementation) and the CUDA context's size.
_LLM_CPP_ONLY = {"--group-size": None, "--attention": "auto", "--cuda-context": None}


def build_llm_parser():
    p = _Parser(
        prog="footprint llm", description="A language model from its config.json, built by the "
        "installed transformers on the meta device and run by footprint's engine (docs/llm.md).")
    p.add_argument("config", help="config.json (any model_type transformers knows), or a Hub "
                   "name (org/name)")
    p.add_argument("--revision", default=None, help="a Hub name's branch, tag or commit")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--context", type=int, default=None,
                   help="tokens (default: max_position_embeddings, at most 4096)")
    p.add_argument("--train", action="store_true")
    p.add_argument("--weights", default=None, choices=["fp32", "fp16", "bf16", "int8", "int4"])
    p.add_argument("--precision", default=None, choices=_choices("precision"))
    p.add_argument("--optimizer", default="adamw", choices=_choices("optimizer"))
    p.add_argument("--impl", default="auto", choices=_choices("impl"))
    p.add_argument("--gpu", default=None)
    p.add_argument("--device", default="cuda", choices=_choices("device"))
    p.add_argument("--format", default="table", choices=["table", "json", "csv", "md"])
    p.add_argument("--alloc-conf", default="")
    p.add_argument("--path", default="auto", choices=["auto", "cpp", "python"])
    p.add_argument("--cache", default="auto", choices=["auto", "dynamic", "static"],
                   help="decode's KV cache: generate()'s DynamicCache (auto), or a StaticCache")
    p.add_argument("--check", action="store_true")
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--shard", default="none", choices=_choices("shard"))
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--lora", type=int, default=0, help="LoRA rank (peft's get_peft_model)")
    p.add_argument("--lora-alpha", type=float, default=16)
    p.add_argument("--lora-targets", default=None,
                   help="q_proj,v_proj or all-linear (default: peft's for the model_type)")
    p.add_argument("--fit", default="none", choices=_choices("fit"))
    p.add_argument("--html", default=None, help="the memory page of the training step (else the "
                   "larger inference run)")
    p.add_argument("--snapshot", default=None, help="the same as a memory_viz snapshot")
    p.add_argument("--guess", action="append", default=None, help=argparse.SUPPRESS)
    for flag in _LLM_CPP_ONLY:
        p.add_argument(flag, default=None, help=argparse.SUPPRESS)
    for flag in _ENGINE_FLAGS:
        p.add_argument(flag, default=None, help=argparse.SUPPRESS)
    return p


def _llm_path(argv):
    for i, a in enumerate(argv):
        if a == "--path" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--path="):
            return a.split("=", 1)[1]
    return "auto"


def _message(e):
    """An exception as one line: its first line, with its type where the message alone would not
    say what went wrong (KeyError: 'x')."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(e, SystemExit):
        return (f"the model's code called sys.exit({e.code!r}); footprint decides its own exit "
                "status, and the run did not finish")
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    plain = (Usage, OSError, ValueError, RuntimeError, TypeError, ImportError)
    if isinstance(e, plain) and first:
        return first
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _guarded(parser, argv, run, out, err):
    """Parse argv and run: a usage error exits 2, any other failure 1, each as one escaped line
    on `err` (and as JSON on `out` with --format json). Nothing the model raises escapes."""
    json_out = "json" in [a.split("=", 1)[-1] for a in argv if a.startswith("--format")] or \
        any(a == "--format" and b == "json" for a, b in zip(argv, argv[1:]))
    try:
        args = parser.parse_args(argv)
        return run(args, out, err)
    except BaseException as e:  # noqa: B902: the model's code can raise anything, SystemExit too
        status = EXIT_USAGE if isinstance(e, Usage) else EXIT_ERROR
        message = escape(_message(e))
        err.write(f"footprint: {message}\n")
        if json_out:
            out.write(json.dumps({"error": message, "exit_status": status}, indent=2) + "\n")
        return status


def run_python_llm(args, out, err):
    for flag, default in _LLM_CPP_ONLY.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None and value != default:
            raise Usage(f"{flag}: the python path (transformers' own code) does not have it; "
                        "the C++ path has it for llama, mistral, qwen2, gpt2 and bert")
    if args.weights in ("int8", "int4"):
        raise Usage(f"--weights {args.weights}: the python path builds fp32, fp16 or bf16 "
                    "weights; the C++ path quantizes")
    if args.guess:
        raise Usage("--guess: footprint llm runs transformers' own modules, which need no guess")
    import footprint
    from . import _llm
    cfg, _ = _llm.load_config(args.config, args.revision)
    context = args.context or min(getattr(cfg, "max_position_embeddings", None) or 4096, 4096)
    weights = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}.get(args.weights)
    r = footprint.llm(args.config, context=context, batch=args.batch,
                      train=args.train, optimizer=args.optimizer, impl=args.impl,
                      precision=args.precision, weights=weights, gpu=args.gpu,
                      device=args.device,
                      cache="dynamic" if args.cache == "auto" else args.cache,
                      checkpointing=args.checkpointing, shard=args.shard, gpus=args.gpus,
                      tp=args.tp, lora=args.lora, lora_alpha=args.lora_alpha,
                      lora_targets=args.lora_targets,
                      fit=None if args.fit == "none" else args.fit,
                      memory=dict({"alloc_conf": args.alloc_conf} if args.alloc_conf else {},
                                  timeline=bool(args.html or args.snapshot)),
                      revision=args.revision)
    if args.html:
        r.save_html(args.html)
    if args.snapshot:
        r.save_snapshot(args.snapshot)
    if args.format in ("csv", "md"):
        raise Usage(f"--format {args.format}: the python path of footprint llm prints a table "
                    "or JSON")
    out.write((r.to_json() if args.format == "json" else str(r).rstrip("\n")) + "\n")
    gaps = [g for run in r.runs.values() for g in run._data.get("gaps", [])]
    for gap in gaps:
        err.write(f"footprint: {escape(gap)}\n")
    if gaps:
        return EXIT_INEXACT
    if r._data.get("fit") and not r._data["fit"]["largest"]:
        return EXIT_NO_FIT
    fits = [run.fits() for run in r.runs.values()]
    return EXIT_NO_FIT if args.check and False in fits else EXIT_OK


def main(argv=None, out=None, err=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    out, err = out or sys.stdout, err or sys.stderr
    if argv and argv[0] == "llm":
        if _llm_path(argv) != "python":
            return run_native(argv)
        return _guarded(build_llm_parser(), argv[1:], run_python_llm, out, err)
    if not argv or not any(is_python_model(a) for a in argv[1:2]):
        return run_native(argv)
    return _guarded(build_parser(), argv, run_python, out, err)


def _inputs(args, model):
    """(shapes, dtypes) from --input; for a .pt2 without --input, its exported shapes, and its
    inputs' dtypes wherever --input names none."""
    inputs = []
    for text in args.input:
        shapes, dtypes = parse_input(text)
        inputs += list(zip(shapes, dtypes))
    exported = getattr(model, "inputs", None)  # a .pt2's Program
    if exported is not None:
        if not inputs:
            inputs = [(tuple(s[1:]) if args.command == "fit" else tuple(s), None)
                      for s, _ in exported]
        # The program's own dtype where --input names none (float32 is the default anyway).
        own = [str(d).replace("torch.", "") for _, d in exported]
        inputs = [(s, d or (own[k] if k < len(own) and own[k] != "float32" else None))
                  for k, (s, d) in enumerate(inputs)]
        # fit's samples at the exported batch, for the check of the other dimensions
        full = [((exported[k][0][0],) + s if args.command == "fit" and k < len(exported) else s)
                for k, (s, _) in enumerate(inputs)]
        try:
            model.check_inputs(full)
        except ValueError as e:
            raise Usage(f"{args.model}: {e}") from None
        if args.command == "fit" and any(0 not in dims for dims in model.symbolic):
            raise Usage(f"{args.model}: the program's batch (dimension 0 of each input) is "
                        "static; fit varies it: export it with dynamic_shapes for dimension 0")
    elif not inputs:
        raise Usage("--input is required (the shapes to run the model on)")
    shapes = [s for s, _ in inputs]
    dtypes = [d for _, d in inputs]
    return shapes, (None if all(d is None for d in dtypes) else dtypes)


def run_python(args, out, err):
    import footprint
    # Usage errors first, before the model's own code runs.
    if getattr(args, "dtype", None) == "fp64":
        raise Usage("--dtype fp64: the python path runs fp32, fp16 or bf16")
    if getattr(args, "method", "footprint") == "seed":
        raise Usage("--method seed: the seeds' formulas are computed for TorchScript files; a "
                    "Python model gets footprint's estimate alone")
    seconds = float(args.time_limit or 0)
    model, source = load_model(args.model, seconds)
    shapes, dtypes = _inputs(args, model)
    if args.command == "summary":
        precision = {"fp16": "fp16", "bf16": "bf16"}.get(args.dtype, "fp32")
        r = footprint.summary(model, input_size=shapes, dtypes=dtypes, depth=args.depth,
                              mode="train" if args.train else "eval", source=source,
                              guess=args.guess, precision=precision)
        if args.format == "json":
            text = r.to_json()
        else:
            text = r._native.print(format=args.format, depth=args.depth, by_op=args.by == "op",
                                   torchstat=args.columns == "torchstat")
            if args.format == "table":  # the guesses, which the native table does not know
                native = json.loads(r._native.print(format="json", depth=-1)).get("gaps", [])
                text += "".join(f"Gap: {g}\n" for g in r.gaps if g not in native)
        out.write(text.rstrip("\n") + "\n")
        return EXIT_INEXACT if r.gaps else EXIT_OK
    common = dict(optimizer=args.optimizer, impl=args.impl, precision=args.precision,
                  device=args.device, alloc_conf=args.alloc_conf or None, source=source,
                  loss_fn=args.loss, set_to_none=args.zero_grad == "none",
                  context_mib=args.context)
    if args.command == "memory":
        r = footprint.memory(model, input_size=shapes, dtypes=dtypes, train=args.train,
                             gpu=args.gpu, timeline=bool(args.html or args.snapshot),
                             guess=args.guess, **common)
        pictured = r
        text = r.to_json() if args.format == "json" else \
            r._native.print(format=args.format, modules=args.modules)
        status = EXIT_INEXACT if r.gaps else \
            EXIT_NO_FIT if args.check and r.fits() is False else EXIT_OK
    else:
        if any(len(s) == 0 for s in shapes):
            raise Usage("fit: --input is one sample's shape (3x224x224), the batch is what varies")
        if args.guess:
            footprint._guess(args.guess)
        r = footprint.fit(model, sample_size=shapes, gpu=args.gpu, train=args.train,
                          dtypes=dtypes, timeline=bool(args.html or args.snapshot), **common)
        pictured = r.at_batch
        text = r.print(format=args.format)
        status = EXIT_NO_FIT if args.check and r.batch == 0 else EXIT_OK
    # The pictures first: a picture that cannot be written is the one error, before any report.
    if args.html:
        pictured.save_html(args.html)
    if args.snapshot:
        pictured.save_snapshot(args.snapshot)
    out.write(text.rstrip("\n") + "\n")
    for gap in r.gaps:
        err.write(f"footprint: {escape(gap)}\n")
    return status


def run_native(argv):
    """Every other command and file: the C++ command installed with the package."""
    here = os.path.dirname(os.path.abspath(__file__))
    exe = os.path.join(here, "bin", "footprint")
    if not os.path.exists(exe):
        print("footprint: the C++ command is not installed beside the package "
              f"(looked for {exe}); build it with ./dev.sh build", file=sys.stderr)
        return EXIT_ERROR
    os.environ.setdefault("FOOTPRINT_PYTHON", sys.executable)
    os.environ.setdefault("FOOTPRINT_PACKAGE", os.path.dirname(here))
    os.execv(exe, [exe] + argv)


class _ModelText:
    """sys.stdout and sys.stderr while the engine runs a model: what the model's code writes goes
    to stderr as one escaped line each ("footprint: the model prints: ..."), or nowhere."""

    def __init__(self, err, drop):
        self.err, self.drop, self.pending = err, drop, ""
        self.encoding, self.errors = "utf-8", "backslashreplace"

    def write(self, text):
        if self.drop:
            return len(text)
        self.pending += str(text)
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self._line(line)
        if len(self.pending) > 65536:
            self._line(self.pending)
            self.pending = ""
        return len(text)

    def _line(self, line):
        self.err.write(f"footprint: the model prints: {escape(line)}\n")
        self.err.flush()

    def flush(self):
        if self.pending:
            self._line(self.pending)
            self.pending = ""

    def isatty(self):
        return False

    def fileno(self):
        return 2


def _flag(argv, name):
    """The last value of `name` in argv (the C++ command appends the limits it resolved)."""
    value = None
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(name + "="):
            value = a.split("=", 1)[1]
    return value


def engine(argv=None):
    """The command line's Python engine, which the C++ command runs as a child process
    (run_engine): the report goes to the descriptor that was stdout, and ends with STATUS_MARK
    and the exit status; descriptor 1 becomes stderr, and sys.stdout and sys.stderr carry the
    model's writes as escaped lines (--model-output drop: nowhere). The limits the C++ command
    passes on apply to every capture: --time-limit, --max-ops, --max-cpu-memory. The process
    leaves with os._exit, so that nothing the model registered (atexit, threads) runs after."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="backslashreplace")
    err = os.fdopen(os.dup(2), "w", encoding="utf-8", errors="backslashreplace",
                    buffering=1)
    os.dup2(2, 1)
    drop = _flag(argv, "--model-output") == "drop"
    sys.stdout = _ModelText(err, drop)
    sys.stderr = _ModelText(err, drop)
    import warnings

    def warning_line(message, category, filename, lineno, file=None, line=None):
        err.write(f"footprint: warning: {escape(f'{category.__name__}: {message}')}\n")
    warnings.showwarning = warning_line
    status = EXIT_ERROR
    try:
        from . import _core, _run
        _core.word_for_command_line()  # library messages name --gpu, not gpu=
        limits = {}
        if _flag(argv, "--time-limit"):
            limits["seconds"] = float(_flag(argv, "--time-limit"))
        if _flag(argv, "--max-ops"):
            limits["ops"] = int(_flag(argv, "--max-ops"))
        if _flag(argv, "--max-memory"):
            limits["memory_bytes"] = _core.size_parse(_flag(argv, "--max-memory"))
        if _flag(argv, "--max-cpu-memory"):
            limits["cpu_bytes"] = _core.size_parse(_flag(argv, "--max-cpu-memory"))
        _run.LIMITS = limits
        status = main(argv, out, err)
    except BaseException as e:  # noqa: B902: torch or the package did not import
        message = escape(_message(e))
        err.write(f"footprint: {message}\n")
        if _flag(argv, "--format") == "json":
            out.write(json.dumps({"error": message, "exit_status": status}, indent=2) + "\n")
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        out.write(f"{STATUS_MARK}{status}\n")
        out.flush()
        err.flush()
        os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
