"""`footprint summary|memory|fit MODEL` for models that are Python code: a file and the class or
factory in it (model.py:Net, as torchstat's -f file.py -m Net), or a torch.export program (.pt2).

The C++ command runs this as its engine for such models (under the same limits: address space,
CPU time, wall time), with the same options; `python -m footprint.cli` runs it directly. Every
other file goes to the C++ command (footprint/bin/footprint in a wheel). The model is built under
torch.device("meta"), so its weights take no memory.
"""
import argparse
import importlib.util
import inspect
import json
import os
import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INEXACT, EXIT_NO_FIT = 0, 1, 2, 3, 4


class Usage(Exception):
    pass


def is_python_model(arg):
    path = arg.rsplit(":", 1)[0] if ".py:" in arg else arg
    return path.endswith(".py") or path.endswith(".pt2")


def load_model(spec):
    """model.py:Name (a Module class, or a function returning a module) or program.pt2."""
    import torch
    if spec.endswith(".pt2"):
        if not os.path.exists(spec):
            raise FileNotFoundError(f"{spec}: no such file")
        import warnings
        with warnings.catch_warnings():  # the archive's read-only buffers: PyTorch's own warning
            warnings.simplefilter("ignore")
            program = torch.export.load(spec)
        return program.module(), spec
    path, _, name = spec.partition(":")
    if not path.endswith(".py"):
        raise Usage(f"{spec}: expected FILE.py:NAME (a class or factory in the file) or a .pt2")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    module_name = "footprint_model_" + os.path.splitext(os.path.basename(path))[0]
    loader = importlib.util.spec_from_file_location(module_name, path)
    code = importlib.util.module_from_spec(loader)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
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
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise Usage(f"--input {text}: {part!r} is not a shape such as 8x3x224x224") from None
        if any(d < 0 for d in shape):
            raise Usage(f"--input {text}: dimensions must not be negative")
        shapes.append(shape)
        dtypes.append(dtype or None)
    return shapes, dtypes


def build_parser():
    p = argparse.ArgumentParser(prog="footprint", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("summary", "module table with shapes, FLOPs and activations"),
                       ("memory", "peak memory of inference or a training step"),
                       ("fit", "the largest batch that fits a GPU")):
        c = sub.add_parser(name, help=text)
        c.add_argument("model", help="model.py:Class (or :factory), or program.pt2")
        c.add_argument("--input", action="append", required=True,
                       help="input shape(s): 8x3x224x224, 8x128:int64; fit: one sample's, 3x224x224")
        c.add_argument("--format", default="table", choices=["table", "json"])
        c.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
        if name == "summary":
            c.add_argument("--train", action="store_true")
            c.add_argument("--depth", type=int, default=3)
            c.add_argument("--by-op", action="store_true")
        else:
            c.add_argument("--train", action="store_true", default=(name == "fit"))
            c.add_argument("--optimizer", default="adamw")
            c.add_argument("--impl", default="auto", choices=["auto", "foreach", "fused", "for-loop"])
            c.add_argument("--precision", default="fp32",
                           choices=["fp32", "fp16", "bf16", "bf16-amp", "fp16-amp"])
            c.add_argument("--gpu", default=None, required=(name == "fit"))
            c.add_argument("--alloc-conf", default="")
            c.add_argument("--modules", type=int, default=8)
            c.add_argument("--check", action="store_true")
            c.add_argument("--html", default=None)
            c.add_argument("--snapshot", default=None)
        c.add_argument("--guess", action="append", default=None, metavar="OP",
                       help="run OP (ns::op), which has no meta implementation, with an output "
                            "shaped like its first input; the report says so")
        # The engine's limits, which the C++ command passes on; the process is already under them.
        for flag in ("--max-memory", "--time-limit", "--max-cpu-memory", "--max-ops", "--model-output"):
            c.add_argument(flag, default=None, help=argparse.SUPPRESS)
    return p


# The C++ path's options that the Python path (transformers' own code) does not have: the
# quantization group (int8/int4 weights are the C++ path's), the attention kernel (the python path
# runs the config's attn_implementation) and the CUDA context's size.
_LLM_CPP_ONLY = {"--group-size": None, "--attention": "auto", "--cuda-context": None}


def build_llm_parser():
    p = argparse.ArgumentParser(
        prog="footprint llm", description="A language model from its config.json, built by the "
        "installed transformers on the meta device and run by footprint's engine (docs/llm.md).")
    p.add_argument("config", help="config.json (any model_type transformers knows)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--context", type=int, default=None,
                   help="tokens (default: max_position_embeddings, at most 4096)")
    p.add_argument("--train", action="store_true")
    p.add_argument("--weights", default=None, choices=["fp32", "fp16", "bf16", "int8", "int4"])
    p.add_argument("--precision", default=None,
                   choices=["fp32", "fp16", "bf16", "bf16-amp", "fp16-amp"])
    p.add_argument("--optimizer", default="adamw")
    p.add_argument("--impl", default="auto", choices=["auto", "foreach", "fused", "for-loop"])
    p.add_argument("--gpu", default=None)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.add_argument("--alloc-conf", default="")
    p.add_argument("--path", default="auto", choices=["auto", "cpp", "python"])
    p.add_argument("--cache", default="auto", choices=["auto", "dynamic", "static"],
                   help="decode's KV cache: generate()'s DynamicCache (auto), or a StaticCache")
    p.add_argument("--check", action="store_true")
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--shard", default="none", choices=["none", "zero1", "zero2", "zero3", "fsdp"])
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--lora", type=int, default=0, help="LoRA rank (peft's get_peft_model)")
    p.add_argument("--lora-alpha", type=float, default=16)
    p.add_argument("--lora-targets", default=None,
                   help="q_proj,v_proj or all-linear (default: peft's for the model_type)")
    p.add_argument("--fit", default="none", choices=["none", "batch", "context"])
    p.add_argument("--html", default=None, help="the memory page of the training step (else the "
                   "larger inference run)")
    p.add_argument("--snapshot", default=None, help="the same as a memory_viz snapshot")
    for flag in _LLM_CPP_ONLY:
        p.add_argument(flag, default=None, help=argparse.SUPPRESS)
    for flag in ("--max-memory", "--time-limit", "--max-cpu-memory", "--max-ops", "--model-output"):
        p.add_argument(flag, default=None, help=argparse.SUPPRESS)
    return p


def _llm_path(argv):
    for i, a in enumerate(argv):
        if a == "--path" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--path="):
            return a.split("=", 1)[1]
    return "auto"


def _guarded(parser, argv, run):
    """Parse argv and run: a usage error exits 2, any other error 1, each as one line (and as
    JSON with --format json)."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    try:
        return run(args)
    except (Usage, FileNotFoundError, ValueError, TypeError, ImportError, RuntimeError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"footprint: {message}", file=sys.stderr)
        if args.format == "json":
            print(json.dumps({"error": message, "exit_status": EXIT_ERROR}, indent=2))
        return EXIT_USAGE if isinstance(e, Usage) else EXIT_ERROR


def run_python_llm(args):
    for flag, default in _LLM_CPP_ONLY.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None and value != default:
            raise Usage(f"{flag}: the python path (transformers' own code) does not have it; "
                        "the C++ path has it for llama, mistral, qwen2, gpt2 and bert")
    if args.weights in ("int8", "int4"):
        raise Usage(f"--weights {args.weights}: the python path builds fp32, fp16 or bf16 "
                    "weights; the C++ path quantizes")
    import footprint
    from . import _llm
    cfg, _ = _llm.load_config(args.config)
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
                                  timeline=bool(args.html or args.snapshot)))
    if args.html:
        r.save_html(args.html)
    if args.snapshot:
        r.save_snapshot(args.snapshot)
    print(r.to_json() if args.format == "json" else str(r).rstrip("\n"))
    gaps = [g for run in r.runs.values() for g in run._data.get("gaps", [])]
    for gap in gaps:
        print(f"footprint: {gap}", file=sys.stderr)
    if gaps:
        return EXIT_INEXACT
    if r._data.get("fit") and not r._data["fit"]["largest"]:
        return EXIT_NO_FIT
    fits = [run.fits() for run in r.runs.values()]
    return EXIT_NO_FIT if args.check and False in fits else EXIT_OK


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "llm":
        if _llm_path(argv) != "python":
            return run_native(argv)
        return _guarded(build_llm_parser(), argv[1:], run_python_llm)
    if not argv or not any(is_python_model(a) for a in argv[1:2]):
        return run_native(argv)
    return _guarded(build_parser(), argv, run_python)


def run_python(args):
    import footprint
    inputs = []
    for text in args.input:
        shapes, dtypes = parse_input(text)
        inputs += list(zip(shapes, dtypes))
    shapes = [s for s, _ in inputs]
    dtypes = [d for _, d in inputs]
    dtypes = None if all(d is None for d in dtypes) else dtypes
    model, source = load_model(args.model)
    if args.command == "summary":
        r = footprint.summary(model, input_size=shapes, dtypes=dtypes, depth=args.depth,
                              mode="train" if args.train else "eval", device=args.device,
                              source=source, guess=args.guess)
        out = r.to_json() if args.format == "json" else (r.by_op() if args.by_op else str(r))
        print(out.rstrip("\n"))
        return EXIT_INEXACT if r.gaps else EXIT_OK
    common = dict(optimizer=args.optimizer, impl=args.impl, precision=args.precision,
                  device=args.device, alloc_conf=args.alloc_conf or None, source=source)
    if args.command == "memory":
        r = footprint.memory(model, input_size=shapes, dtypes=dtypes, train=args.train,
                             gpu=args.gpu, timeline=bool(args.html or args.snapshot),
                             guess=args.guess, **common)
        if args.html:
            r.save_html(args.html)
        if args.snapshot:
            r.save_snapshot(args.snapshot)
        if args.format == "json":
            print(r.to_json())
        else:
            print(r._native.print(format="table", modules=args.modules).rstrip("\n"))
            for gap in r.gaps:
                print(f"footprint: {gap}", file=sys.stderr)
        if r.gaps:
            return EXIT_INEXACT
        return EXIT_NO_FIT if args.check and r.fits() is False else EXIT_OK
    if any(len(s) == 0 for s in shapes):
        raise Usage("fit: --input is one sample's shape (3x224x224), the batch is what varies")
    r = footprint.fit(model, sample_size=shapes, gpu=args.gpu, train=args.train, dtypes=dtypes,
                      **common)
    print(r.to_json() if args.format == "json" else str(r).rstrip("\n"))
    return EXIT_NO_FIT if args.check and r.batch == 0 else EXIT_OK


def run_native(argv):
    """Every other command and file: the C++ command installed with the package."""
    here = os.path.dirname(os.path.abspath(__file__))
    exe = os.path.join(here, "bin", "footprint")
    if not os.path.exists(exe):
        print("footprint: the C++ command is not installed beside the package "
              f"(looked for {exe}); build it with ./dev.sh build", file=sys.stderr)
        return EXIT_ERROR
    os.environ.setdefault("FOOTPRINT_PYTHON", sys.executable)
    os.execv(exe, [exe] + argv)


if __name__ == "__main__":
    sys.exit(main())
