"""footprint: what a PyTorch model is made of, and whether it fits a GPU, before you rent one.

    import torch, torchvision, footprint
    model = torchvision.models.resnet50()
    footprint.memory(model, (64, 3, 224, 224), train=True, optimizer="adamw", gpu="h100")

Every call runs the model's own code on PyTorch's meta device (shapes, no data) through
footprint's C++ engine, records every op and allocation, and replays them through a model of
PyTorch's CUDA caching allocator. The model is never changed or copied to real memory.

- params(model): parameters and buffers, tied weights once, bytes at each precision.
- summary(model, input_size=...): torchinfo's table, with FLOPs and activations per call.
- memory(model, input_size, train=..., optimizer=..., gpu=...): the peak, by category; the
  report answers .fits(gpu) for any GPU, and .rank_gpus() ranks every GPU footprint knows.
- fit(model, sample_size, gpu=...): the largest batch that fits.
"""
import json as _json
import os as _os

import torch as _torch

from . import _build


def _torch_problem(running):
    """Why footprint cannot run on torch `running` ("2.15.0+cu130"), in one line, or None. The
    engine (_core) is LibTorch C++ code, built against one torch release, and loads into that
    release only (docs/versions.md); this is checked before it is loaded."""
    release = running.split("+")[0]
    minor = tuple(int(p) for p in release.split(".")[:2] if p.isdigit())
    low, high = (tuple(int(p) for p in v.split(".")) for v in (_build.TORCH_MIN, _build.TORCH_MAX))
    if not low <= minor <= high:
        return (f"footprint supports torch {_build.TORCH_MIN} to {_build.TORCH_MAX}, and this "
                f"Python has torch {release}: install one of those (pip install 'torch>="
                f"{_build.TORCH_MIN},<{high[0]}.{high[1] + 1}'), then footprint again")
    if release != _build.TORCH_BUILT:
        return (f"footprint was built against torch {_build.TORCH_BUILT}, and this Python has "
                f"torch {release}: reinstall it against this torch (pip install "
                "--no-build-isolation --no-cache-dir --force-reinstall footprint's source, or "
                f"a wheel built for torch {release}; docs/versions.md)")
    return None


if _torch_problem(_torch.__version__):
    import sys as _sys
    if _os.path.basename(_sys.argv[0]) in ("footprint", "-m", "__main__.py"):
        # The command (the console script, python -m footprint): one line, no traceback.
        _sys.stderr.write(f"footprint: {_torch_problem(_torch.__version__)}\n")
        raise SystemExit(2)
    raise ImportError(_torch_problem(_torch.__version__))

from . import _core, _kernels  # noqa: E402,F401  (_kernels registers meta kernels)
from ._reports import FitReport, MemoryReport, ParamsReport, Record, SummaryReport  # noqa: E402
from ._run import ModelError  # noqa: E402

__version__ = _core.version
__all__ = ["params", "summary", "memory", "fit", "llm", "gpus", "choices", "versions", "program",
           "register_meta", "ModelError",
           "ParamsReport", "SummaryReport", "MemoryReport", "FitReport", "__version__"]


def _module(model):
    if not isinstance(model, _torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    return model


def _source(model, source):
    return source or type(model).__name__


def params(model, precisions=None, depth=1, source=None):
    """Parameters and buffers of `model`, tied weights counted once, with the bytes at each of
    `precisions` ("fp32,fp16,int8", or a list). Reads the module's tensors' metadata only."""
    from ._run import model_data
    _module(model)
    if isinstance(precisions, (list, tuple)):
        precisions = ",".join(precisions)
    m = model_data(model, _source(model, source))
    data = _json.loads(_core.params(m, precisions or "", depth, False, "json"))
    table = _core.params(m, precisions or "", depth, False, "table")
    return ParamsReport(data, table)


def _plan(*, train=False, optimizer="adamw", impl="auto", precision="fp32", loss_fn=None,
          set_to_none=True, device="cuda", gpu=None, context_mib=None, alloc_conf=None, **llm):
    """The planner's RunPlan (footprint/plan.h) for these arguments: every name checked against
    its table, impl "auto" resolved for the device, precision to dtype and autocast, the GPU's
    compute capability and SMs (an H100's when none is named). An optimizer or loss given as a
    class or function is the user's; the plan then checks the rest."""
    q = _core.RunRequest()
    q.train = bool(train)
    q.optimizer = optimizer if isinstance(optimizer, str) else "adamw"
    q.impl, q.precision, q.device = impl, precision, device
    q.loss = loss_fn if isinstance(loss_fn, str) else "auto"
    q.zero_grad = "none" if set_to_none else "zeros"
    q.gpu = "" if gpu is None else str(gpu)
    q.context_mib = -1.0 if context_mib is None else float(context_mib)
    q.alloc_conf = alloc_conf or ""
    for name, value in llm.items():
        setattr(q, name, value)
    return _core.plan_run(q)


def summary(model, input_size=None, input_data=None, dtypes=None, depth=3, mode="eval",
            device="cuda", source=None, guess=None, precision="fp32", **kwargs):
    """torchinfo's summary: one row per module call (a module called twice has two rows), with
    output shapes, parameters, MACs, FLOPs and activation bytes. mode="train" runs forward, a
    loss and backward, and counts backward's FLOPs apart. Extra keyword arguments go to the
    model's forward. guess=["ns::op", ...] runs ops that have no meta implementation with an
    output shaped like their first input, and says so in the report's gaps. precision="fp16"
    or "bf16" runs with the floating parameters and inputs cast, as memory() does."""
    from . import _run
    _module(model)
    gaps = _guess(guess)
    if mode not in ("eval", "train"):
        raise ValueError(f"mode={mode!r}: expected 'eval' or 'train'")
    args, kw = _run.normalize_inputs(input_size, input_data, dtypes, None)
    kw.update(kwargs)
    train = mode == "train"
    plan = _plan(train=train, precision=precision, device=device)
    trace, _ = _run.run(model, args, kw, plan=plan)
    m = _run.model_data(model, _source(model, source), _run.precision_dtype(plan))
    native = _core.summarize(m, trace, _run.input_specs(args, kw), train, _source(model, source))
    data = _json.loads(native.print(format="json", depth=-1))
    data["gaps"] = data.get("gaps", []) + gaps
    table = native.print(format="table", depth=depth) + "".join(f"Gap: {g}\n" for g in gaps)
    return SummaryReport(native, data, table, depth)


def memory(model, input_size=None, input_data=None, *, train=False, optimizer="adamw",
           impl="auto", precision="fp32", gpu=None, device="cuda", loss_fn=None,
           alloc_conf=None, dtypes=None, set_to_none=True, iterations=None, timeline=False,
           source=None, guess=None, context_mib=None, **kwargs):
    """The peak memory of inference (train=False) or of a training step (train=True): zero_grad,
    forward, loss, backward and the optimizer's step, twice (the optimizer's state appears inside
    the first step; the second is the steady state), as PyTorch 2.11 would run it on `device`.

    optimizer: a name ("sgd", "momentum", "adam", "adamw", "adagrad", "rmsprop", ...), a
    torch.optim class, or a function params -> optimizer (lambda p: AdamW(p, fused=True));
    impl "auto" takes torch.optim's default for the device (foreach on CUDA, for-loop on CPU).
    precision: "fp32", "fp16", "bf16" (the parameters cast) or "bf16-amp", "fp16-amp"
    (torch.autocast around forward and loss). gpu: "h100", "a100-40gb", ... or a size ("24GiB").
    alloc_conf: PYTORCH_CUDA_ALLOC_CONF ("expandable_segments:True"). loss_fn(output, labels):
    the loss; by default ("auto") cross-entropy for a 2-D output, else
    output.float().square().mean(); "cross-entropy" or "mean-square" chooses one. context_mib:
    the CUDA context's MiB outside the allocator (default: the GPU profile's).
    guess=["ns::op", ...]: ops with no meta implementation run with an output shaped like their
    first input, and the report says so. Extra keyword arguments go to the model's forward."""
    from . import _run
    _module(model)
    gaps = _guess(guess)
    args, kw = _run.normalize_inputs(input_size, input_data, dtypes, None)
    kw.update(kwargs)
    report = _memory(model, args, kw, train=train, optimizer=optimizer, impl=impl,
                   precision=precision, gpu=gpu, device=device, loss_fn=loss_fn,
                   alloc_conf=alloc_conf, set_to_none=set_to_none, iterations=iterations,
                   timeline=timeline, source=_source(model, source), context_mib=context_mib)
    if gaps:
        report._data["gaps"] = report._data.get("gaps", []) + gaps
        report._table += "".join(f"Gap: {g}\n" for g in gaps)
    return report


def _memory(model, args, kw, *, train, optimizer, impl, precision, gpu, device, loss_fn,
            alloc_conf, set_to_none, iterations, timeline, source, shard=None, context_mib=None):
    from . import _run
    plan = _plan(train=train, optimizer=optimizer, impl=impl, precision=precision,
                 loss_fn=loss_fn, set_to_none=set_to_none, device=device, gpu=gpu,
                 context_mib=context_mib, alloc_conf=alloc_conf)
    trace, info = _run.run(model, args, kw, plan=plan, optimizer=optimizer if train else None,
                           impl=impl, loss_fn=_run.loss_function(loss_fn), iterations=iterations)
    cast = _run.precision_dtype(plan)
    m = _run.model_data(model, source, cast)
    kwargs = dict(target=plan.target, gpu=None if gpu is None else str(gpu),
                  alloc_conf=alloc_conf or "", timeline=timeline,
                  inputs=_run.input_specs(args, kw, cast), precision=plan.precision,
                  optimizer=info["optimizer"], set_to_none=plan.set_to_none, source=source,
                  context=-1.0 if context_mib is None else float(context_mib), **(shard or {}))
    native = _core.analyze(m, trace, **kwargs)
    return MemoryReport(native, (m, trace, kwargs), native.print(format="table"))


def fit(model, sample_size=None, input_data=None, *, gpu, train=True, optimizer="adamw",
        max_batch=1 << 20, timeline=False, **kwargs):
    """The largest batch that fits `gpu`: sample_size is one sample's shape, (3, 224, 224)
    (or input_data, whose first dimension is varied). Each batch tried is a full estimate, as
    memory() makes it; the search aims along the estimates and closes the bracket so that the
    batch fits and the next does not."""
    from . import _run
    _module(model)
    if sample_size is not None:
        sizes = [sample_size] if _run._is_shape(sample_size) else list(sample_size)
        args, kw = _run.normalize_inputs([(1,) + tuple(s) for s in sizes], None,
                                         kwargs.pop("dtypes", None), None)
    else:
        args, kw = _run.normalize_inputs(None, input_data, None, None)
    forward_kwargs = {k: kwargs.pop(k) for k in list(kwargs)
                      if k not in ("impl", "precision", "device", "loss_fn", "alloc_conf",
                                   "set_to_none", "iterations", "source", "context_mib")}
    kw.update(forward_kwargs)
    options = dict(impl="auto", precision="fp32", device="cuda", loss_fn=None, alloc_conf=None,
                   set_to_none=True, iterations=None, source=None, context_mib=None)
    options.update(kwargs)
    options["source"] = _source(model, options["source"])
    seen = {}

    def at(n):
        if n not in seen:
            a, k = _run.with_batch(args, kw, n)
            seen[n] = _memory(model, a, k, train=train, optimizer=optimizer, gpu=gpu,
                              timeline=False, **options)
        return seen[n]
    first = at(1)
    capacity = first._data.get("capacity") or 0
    if not capacity:
        raise ValueError("fit needs a GPU: gpu='h100' or a size such as gpu='24GiB'")
    batch = _core.largest_fitting(lambda n: bool(at(n).fits()),
                                  lambda n: _core.fit_need(at(n)._native), capacity, max_batch)
    captures = len(seen)
    fits = at(max(1, batch))
    if timeline:  # the run at the batch found, again, with what save_html draws
        a, k = _run.with_batch(args, kw, max(1, batch))
        fits = _memory(model, a, k, train=train, optimizer=optimizer, gpu=gpu, timeline=True,
                       **options)
    return FitReport(batch, fits, at(batch + 1), captures)


def llm(config, *, context=2048, batch=1, train=False, optimizer="adamw", impl="auto",
        precision=None, weights=None, gpu=None, device="cuda", cache="dynamic",
        checkpointing=False, shard="none", gpus=1, tp=1, lora=0, lora_alpha=16,
        lora_targets=None, fit=None, fit_max=1 << 20, memory=None, revision=None):
    """A language model from its config.json (a path, its directory, a Hub name such as
    "meta-llama/Llama-3.1-8B" at `revision`, through huggingface_hub's cache and conventions, a
    dict or a transformers config), as the installed transformers builds it: the class
    `architectures` names, made from the config under torch.device("meta"), its own code run by
    the engine. Returns an LlmReport:
    parameters (total, and active per token for a mixture of experts, with its routers' outputs),
    the weights, and the peak memory of prefill of `context` tokens at `batch` and of one decode
    step after `context` - 1 tokens, as generate() runs them (logits for the last token; `cache`
    "dynamic" or "static"), with weights in the config's 16-bit dtype (else bf16) or `weights`;
    or with train=True of a training step with the model's own loss (fp32 weights, precision
    "bf16-amp" unless given; checkpointing=True enables the model's gradient checkpointing;
    lora=r wraps it in peft's LoRA, on lora_targets or peft's default; shard="zero1".."zero3" or
    "fsdp" over `gpus` ranks, and tp (tensor parallelism, of `gpus`), give one rank's).
    fit="batch" or "context" with a gpu: the largest that fits. memory={"timeline": True} keeps
    what LlmReport.save_html and save_snapshot draw. See docs/llm.md."""
    from ._llm import llm as _llm
    return _llm(config, context=context, batch=batch, train=train, optimizer=optimizer, impl=impl,
                precision=precision, weights=weights, gpu=gpu, device=device, cache=cache,
                checkpointing=checkpointing, shard=shard, gpus=gpus, tp=tp, lora=lora,
                lora_alpha=lora_alpha, lora_targets=lora_targets, fit=fit, fit_max=fit_max,
                memory=memory, revision=revision)


def program(path):
    """A torch.export program (.pt2) as an nn.Module that memory(), fit() and summary() run: read
    by footprint's own reader, never unpickled or evaluated (torch.export.load runs what a file
    holds); its graph runs op by op on meta, its modules as the nodes' nn_module_stack names them.
    program.inputs: the exported inputs' (shape, dtype)."""
    from . import _pt2
    if not isinstance(path, (str, _os.PathLike)) or not _os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    return _pt2.load(_os.fspath(path))


def gpus():
    """The GPUs footprint knows: key, name, total bytes, CUDA context bytes, compute capability."""
    return [Record({"gpu": k, "name": n, "total": t, "context": c, "sm": sm})
            for k, n, t, c, sm in _core.devices()]


def versions():
    """What this footprint is and what it models, as `footprint --version` prints it:
    footprint's version; the torch this process runs and the one footprint was built against
    (they are the same: import checks); the supported range; the cuDNN and transformers this
    process has (None when absent); and each set of rules with the torch, machine and libraries
    it was measured on. A memory report's `rules` says whether its run's torch is one of those
    or the rules are carried over to it."""
    try:
        import transformers
        transformers_version = transformers.__version__
    except ImportError:
        transformers_version = None
    cudnn = _torch.backends.cudnn.version() if _torch.backends.cudnn.is_available() else None
    return Record({
        "footprint": __version__, "torch": _torch.__version__, "torch_built": _build.TORCH_BUILT,
        "torch_supported": f"{_build.TORCH_MIN} to {_build.TORCH_MAX}", "cudnn": cudnn,
        "transformers": transformers_version,
        "rules": [{"rules": r, "what": w, "torch": t, "measured": m}
                  for r, w, t, m in _core.rule_sources()]})


def choices(option=None):
    """The names an option takes, each with its help line, from footprint's planner (the tables
    the command line's --help and choices read): choices("precision") -> [Record(name="fp32",
    help=...), ...]. Without an option, the options that have such a table: precision, optimizer,
    impl, loss, device, attention, shard, fit, zero-grad."""
    if option is None:
        return list(_core.vocabularies())
    return [Record({"name": n, "help": h}) for n, h in _core.choices(option)]


_registered = []
_guessed = {}


def _first_tensor(args):
    for a in args:
        if isinstance(a, _torch.Tensor):
            return a
        if isinstance(a, (list, tuple)):
            t = _first_tensor(a)
            if t is not None:
                return t
    return None


def _guess(ops):
    """For each op named in guess=: a meta kernel whose output is shaped like the op's first
    tensor input (right for element-wise ops), and the line the report carries about it."""
    lines = []
    for op in ops or ():
        if op not in _guessed:
            def guess(*args, _op=op, **kwargs):
                t = _first_tensor(args)
                if t is None:
                    raise ModelError(f"{_op}: guess= needs a tensor argument to shape its output on")
                return _torch.empty_like(t)
            register_meta(op, guess)
            _guessed[op] = True
        lines.append(f"{op}: no meta implementation; its output was taken to be shaped like its "
                     "first tensor input (guess=): the numbers are not exact")
    return lines


def register_meta(op, fn):
    """Gives an op with no meta implementation one, so that a model calling it runs on meta:
    `fn` takes the op's arguments and returns empty tensors of the outputs' shapes (for example
    `lambda x: torch.empty_like(x)`). op is "namespace::name" or a torch.ops overload."""
    if isinstance(op, str):
        ns, _, name = op.partition("::")
        if not name:
            raise ValueError(f"op {op!r}: expected 'namespace::name'")
        overload = getattr(getattr(_torch.ops, ns), name)
    else:
        overload = op
    if hasattr(overload, "default"):
        overload = overload.default
    qualified = overload.name()  # "ns::name" or "ns::name.overload"
    ns = qualified.split("::")[0]
    lib = _torch.library.Library(ns, "IMPL", "Meta")
    lib.impl(qualified.split("::")[1], fn, allow_override=True)
    _registered.append(lib)  # kept: the registration lasts while the library object does
    return overload
