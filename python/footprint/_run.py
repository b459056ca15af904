"""Runs the user's nn.Module on the meta device inside a footprint capture session.

The model is never changed or copied to real memory: while the run lasts (forward, loss and
backward, where torch.utils.checkpoint recomputes), meta tensors stand in its parameters and
buffers as torch.func.functional_call puts them (tied ones stay tied), and its own tensors and
training flags are put back afterwards. The session (the C++
engine's CaptureSession) records every aten op and every meta allocation; module hooks mark the
module calls; the real torch.optim step runs on the meta parameters, with the implementation a
run on the target would choose.
"""
import contextlib
import linecache
import os
import sys
import traceback

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.stateless import _reparametrize_module

from . import _core

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))

# dtype <-> the names the C++ core reads (torch's own spelling).
_DTYPES = {
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp64": torch.float64, "float64": torch.float64,
    "int64": torch.int64, "long": torch.int64, "int32": torch.int32, "int": torch.int32,
    "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
}


def dtype_name(dtype):
    return str(dtype)  # "torch.float32"


def to_dtype(d):
    if d is None or isinstance(d, torch.dtype):
        return d
    if isinstance(d, str) and d.lower() in _DTYPES:
        return _DTYPES[d.lower()]
    raise ValueError(f"dtype {d!r}: expected a torch.dtype or one of {', '.join(sorted(_DTYPES))}")


# ------------------------------------------------------------------ the model as data

def module_types(model):
    return {path: type(m).__name__ for path, m in model.named_modules()}


def _storage_key(t):
    try:
        return f"{t.device.type}:{t.untyped_storage()._cdata}"
    except (RuntimeError, NotImplementedError):  # a tensor subclass with no storage
        return ""


def precision_dtype(plan):
    """The dtype the plan casts floating parameters and inputs to (fp16, bf16), else None."""
    return getattr(torch, plan.parameters_dtype) if plan.parameters_dtype else None


def model_data(model, source, cast=None):
    """The C++ Model: every parameter and buffer with its storage identity, so that tied
    weights are counted once, as params.cpp defines "tied"; floating ones at `cast` when given
    (as model.to(cast) would make them)."""
    tensors = []
    for role, items in (("p", model.named_parameters(remove_duplicate=False)),
                        ("b", model.named_buffers(remove_duplicate=False))):
        for name, t in items:
            if t is None:
                continue
            dtype = cast if cast is not None and t.is_floating_point() else t.dtype
            tensors.append((name, list(t.shape), dtype_name(dtype), role == "p",
                            bool(t.requires_grad), _storage_key(t), int(t.storage_offset()),
                            list(t.stride())))
    return _core.make_model(source, tensors, module_types(model))


def describe(model):
    return type(model).__name__


# ------------------------------------------------------------------ inputs

def _is_shape(x):
    return isinstance(x, (tuple, list, torch.Size)) and all(isinstance(d, int) for d in x) and len(x) > 0


def normalize_inputs(input_size, input_data, dtypes, default_dtype):
    """(args, kwargs) of templates: torch.Size-like shapes become ("shape", shape, dtype)."""
    if input_size is not None and input_data is not None:
        raise ValueError("pass input_size or input_data, not both")
    if input_size is None and input_data is None:
        raise ValueError("no input: pass input_size=(batch, ...) or input_data=tensor(s)")
    if input_size is not None:
        sizes = [input_size] if _is_shape(input_size) else list(input_size)
        for s in sizes:
            if not _is_shape(s):
                raise ValueError(f"input_size: {s!r} is not a shape (a tuple of ints, such as (8, 3, 224, 224))")
        dts = list(dtypes) if dtypes is not None else [None] * len(sizes)
        if len(dts) != len(sizes):
            raise ValueError(f"dtypes: {len(dts)} given for {len(sizes)} inputs")
        return [("shape", tuple(s), to_dtype(d) or default_dtype) for s, d in zip(sizes, dts)], {}
    if isinstance(input_data, dict):
        return [], dict(input_data)
    if isinstance(input_data, (list, tuple)) and not _is_shape(input_data):
        return list(input_data), {}
    return [input_data], {}


def _materialize(x, default_dtype, cast=None):
    """A template made real on meta: shapes and tensors become meta tensors (made inside the
    session, so they are the run's inputs); other values pass through. `cast`: the dtype that
    precision="fp16"/"bf16" gives floating inputs, as the parameters."""
    if isinstance(x, tuple) and len(x) == 3 and x[0] == "shape":
        dtype = x[2] or default_dtype
        return torch.empty(x[1], dtype=dtype, device="meta")
    if isinstance(x, torch.Tensor):
        dtype = cast if cast is not None and x.is_floating_point() else x.dtype
        return torch.empty_strided(x.shape, x.stride(), dtype=dtype, device="meta")
    if isinstance(x, dict):
        return {k: _materialize(v, default_dtype, cast) for k, v in x.items()}
    if isinstance(x, list):
        return [_materialize(v, default_dtype, cast) for v in x]
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(_materialize(v, default_dtype, cast) for v in x)
    if _is_kv_cache(x):
        return _materialize_cache(x)
    return x


def _is_kv_cache(x):
    return type(x).__module__.startswith("transformers.") and hasattr(x, "layers") and \
        type(x).__name__.endswith("Cache")


def _materialize_cache(cache):
    """A transformers KV cache (DynamicCache, StaticCache, ...) as a decode step's input: the same
    object with each layer's tensors made anew on meta inside the session, contiguous, so that
    the run holds them as generate() does and frees each when the step replaces it."""
    import copy
    new = copy.copy(cache)
    new.layers = []
    for layer in cache.layers:
        fresh = copy.copy(layer)
        for name, value in vars(layer).items():
            if isinstance(value, torch.Tensor):
                setattr(fresh, name, torch.empty(value.shape, dtype=value.dtype, device="meta"))
        new.layers.append(fresh)
    return new


def input_specs(args, kwargs, cast=None):
    """(shape, dtype) of every tensor input, in order, as the reports list them."""
    specs = []

    def walk(x):
        if isinstance(x, tuple) and len(x) == 3 and x[0] == "shape":
            dtype = x[2] if x[2] is not None else cast
            specs.append((list(x[1]), dtype_name(dtype) if dtype is not None else ""))
        elif isinstance(x, torch.Tensor):
            dtype = cast if cast is not None and x.is_floating_point() else x.dtype
            specs.append((list(x.shape), dtype_name(dtype)))
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
    for a in args:
        walk(a)
    for v in kwargs.values():
        walk(v)
    return specs


def batch_of(args, kwargs):
    for x in list(args) + list(kwargs.values()):
        if isinstance(x, tuple) and len(x) == 3 and x[0] == "shape":
            return x[1][0]
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            return x.shape[0]
    return None


def with_batch(args, kwargs, batch):
    """The same inputs with the first dimension of each tensor input set to `batch`."""
    def change(x):
        if isinstance(x, tuple) and len(x) == 3 and x[0] == "shape":
            return ("shape", (batch,) + tuple(x[1][1:]), x[2])
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            return torch.empty((batch,) + tuple(x.shape[1:]), dtype=x.dtype, device="meta")
        if isinstance(x, dict):
            return {k: change(v) for k, v in x.items()}
        if isinstance(x, list):
            return [change(v) for v in x]
        if isinstance(x, tuple) and not hasattr(x, "_fields"):
            return tuple(change(v) for v in x)
        return x
    return [change(a) for a in args], {k: change(v) for k, v in kwargs.items()}


# ------------------------------------------------------------------ optimizers

# torch.optim's classes by the planner's OptimizerKind (footprint/memory.h), and the keyword
# arguments of each implementation the planner names (footprint/plan.h).
_OPTIMIZER_CLASSES = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad,
                      torch.optim.RMSprop)
_IMPL_KWARGS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True},
                "fused": {"fused": True}}


def optimizer_factory(optimizer, impl, plan):
    """A function params -> torch.optim.Optimizer, and a name for the report. A name is planned
    (plan.optimizer: its class and settings, with impl "auto" resolved for the target); a
    torch.optim class takes impl's keyword arguments, or its own default with "auto"."""
    if isinstance(optimizer, str):
        spec = plan.optimizer
        cls = _OPTIMIZER_CLASSES[int(spec["kind"])]
        kwargs = dict(_IMPL_KWARGS[plan.impl])
        if cls is torch.optim.SGD:
            kwargs["lr"] = 0.01
            if spec["momentum"]:
                kwargs["momentum"] = spec["momentum"]
            if spec["nesterov"]:
                kwargs["nesterov"] = True
        if spec["amsgrad"]:
            kwargs["amsgrad"] = True
        if spec["centered"]:
            kwargs["centered"] = True
        return (lambda params: cls(params, **kwargs)), cls.__name__
    extra = {} if impl == "auto" else _IMPL_KWARGS[plan.impl]
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return (lambda params: optimizer(params, **extra)), optimizer.__name__
    if callable(optimizer):
        if extra:
            raise ValueError("impl= applies to an optimizer given by name or class; a factory "
                             "chooses its own (foreach=True, fused=True)")
        return optimizer, None
    raise ValueError(f"optimizer={optimizer!r}: expected a name, a torch.optim class, or a "
                     "function params -> optimizer")


@contextlib.contextmanager
def _fused_on_meta():
    """torch.optim checks that fused=True parameters are on a device with fused kernels; meta
    stands for the target's, and the fused kernels have meta implementations."""
    import torch.optim.optimizer as opt_mod
    before = opt_mod._get_fused_kernels_supported_devices
    opt_mod._get_fused_kernels_supported_devices = lambda: before() + ["meta"]
    try:
        yield
    finally:
        opt_mod._get_fused_kernels_supported_devices = before


class _Autocast:
    """The run's autocast (footprint's own, on meta: session.autocast), as the model's code sees
    it. transformers runs its rotary embeddings' cos and sin in fp32 inside
    maybe_autocast(device_type, enabled=False), which pauses a real autocast; for a meta device it
    returns a null context (utils/generic.py), so here, for meta, it pauses footprint's autocast
    until the block ends (its cache of cast weights kept, as torch keeps it in a nested block).
    Each transformers module holds its own reference to maybe_autocast: each is patched."""

    def __init__(self, session, amp):
        self.session, self.amp, self.on = session, amp, False

    def set(self, on):
        self.on = bool(on) and self.amp
        self.session.autocast(on)

    def _paused(self, enabled):
        @contextlib.contextmanager
        def block():
            pause = self.on and not enabled
            if pause:
                self.on = False
                self.session.pause_autocast(True)
            try:
                yield
            finally:
                if pause:
                    self.session.pause_autocast(False)
                    self.on = True
        return block()

    def __enter__(self):
        self.patched = []
        for name, module in list(sys.modules.items()):
            if not name.startswith("transformers."):
                continue
            original = getattr(module, "maybe_autocast", None)
            if callable(original):
                def maybe_autocast(device_type, dtype=None, enabled=True, cache_enabled=None,
                                   _original=original):
                    if device_type == "meta":
                        return self._paused(enabled)
                    return _original(device_type, dtype=dtype, enabled=enabled,
                                     cache_enabled=cache_enabled)
                self.patched.append((module, original))
                module.maybe_autocast = maybe_autocast
        return self

    def __exit__(self, *exc):
        for module, original in self.patched:
            module.maybe_autocast = original
        return False


@contextlib.contextmanager
def _fast_paths():
    """nn.MultiheadAttention's and nn.TransformerEncoderLayer's fused inference paths are taken only
    for tensors on cpu, cuda or the privateuse1 backend (torch/nn/modules/activation.py,
    _check_arg_device; transformer.py, _supported_device_type), which a meta tensor is not. Meta
    stands for the target here, so while a capture runs the privateuse1 backend's name, which
    both checks read from Python, is "meta": the run takes the path a real one takes (the C++
    engine does the same for TorchScript, python_lifetimes.cpp's see_cpu_tensors)."""
    import torch.utils.backend_registration as registration
    before = registration._privateuse1_backend_name
    registration._privateuse1_backend_name = "meta"
    try:
        yield
    finally:
        registration._privateuse1_backend_name = before


def resolve_impl(opt, target):
    """torch.optim's own default for the target (_default_to_fused_or_foreach): foreach where
    every parameter is on CUDA, the for-loop on CPU. On meta it would always pick the for-loop,
    so the choice is made here and written into each group. Returns the implementation's name."""
    names = set()
    for group in opt.param_groups:
        if group.get("fused"):
            names.add("fused")
            continue
        if "foreach" in group and group["foreach"] is None:
            group["foreach"] = _core.default_impl(target) == "foreach"
        names.add("foreach" if group.get("foreach") else "for-loop")
    return "/".join(sorted(names))


# ------------------------------------------------------------------ errors

class ModelError(ValueError):
    """The model's code could not run on the meta device (or broke a limit); the message names
    the op, the module and the line of the user's code, and what to do."""


def _user_frame(tb):
    """The innermost frame of the traceback outside torch and footprint: the user's line."""
    best = None
    for frame, lineno in traceback.walk_tb(tb):
        f = os.path.abspath(frame.f_code.co_filename)
        if f.startswith(_TORCH_DIR) or f.startswith(_PACKAGE_DIR) or "<" in f:
            continue
        best = (f, lineno)
    return best


_ADVICE_ITEM = ("on meta a tensor has no values, so code that reads one (.item(), .tolist(), "
                "an `if` on a tensor, a data-dependent shape) cannot run: make the value a Python "
                "number or an argument, or skip the code when x.is_meta")


def explain(e, module_path, tb):
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    where = []
    if module_path:
        where.append(f"in module {module_path}")
    frame = _user_frame(tb)
    if frame:
        line = linecache.getline(frame[0], frame[1]).strip()
        where.append(f"at {frame[0]}:{frame[1]}" + (f" ({line})" if line else ""))
    text = f"the model's code failed on meta{(' ' + ', '.join(where)) if where else ''}: {msg}"
    lower = msg.lower()
    if "item()" in lower or "cannot be called on meta" in lower or "data-dependent" in lower \
            or "cannot copy out of meta" in lower or "tolist" in lower:
        text += f"; {_ADVICE_ITEM}"
    elif ("no kernel for the meta device" in lower or "fake impl" in lower
          or "meta kernel" in lower or ("could not run" in lower and "meta" in lower)):
        text += ("; the op has no meta implementation: give it one with "
                 "footprint.register_meta(\"ns::op\", fn), where fn returns empty outputs of the "
                 "right shapes, or pass guess=[\"ns::op\"] (--guess on the command line) to take "
                 "its output to be shaped like its first input")
    return text


# ------------------------------------------------------------------ the run

def output_tensor(y):
    """The tensor a loss is computed from: the output, a model output's logits, or the first
    tensor of a tuple, list or dict."""
    if isinstance(y, torch.Tensor):
        return y
    logits = getattr(y, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(y, dict):
        for v in y.values():
            t = output_tensor(v)
            if t is not None:
                return t
    if isinstance(y, (list, tuple)):
        for v in y:
            t = output_tensor(v)
            if t is not None:
                return t
    return None


def default_loss(y, labels):
    """../shared/MEASUREMENT.md's loss: cross-entropy against the labels for a 2-D floating
    output (a classifier), else y.float().square().mean(). A model output that carries its own
    loss (transformers' with labels) is used as it is."""
    own = getattr(y, "loss", None)
    if isinstance(own, torch.Tensor):
        return own
    t = output_tensor(y)
    if t is None:
        raise ModelError("the model returned no tensor to compute a loss from: pass loss_fn=")
    if _core.resolve_loss("auto", t.dim(), t.is_floating_point(),
                          labels is not None) == "cross-entropy":
        return F.cross_entropy(t, labels)
    return t.float().square().mean()


def loss_function(loss_fn):
    """loss_fn as given (a function, or None for default_loss), or by name: "auto",
    "cross-entropy" (of the output's first tensor against the labels), "mean-square"."""
    if loss_fn is None or callable(loss_fn):
        return loss_fn
    if loss_fn == "auto":
        return None
    if loss_fn == "cross-entropy":
        return lambda y, labels: F.cross_entropy(output_tensor(y), labels)
    if loss_fn == "mean-square":
        return lambda y, labels: output_tensor(y).float().square().mean()
    raise ValueError(f"loss_fn={loss_fn!r}: expected a function, 'auto', 'cross-entropy' or "
                     "'mean-square'")


class _Hooks:
    """Module calls, as the global module hooks see them: one call per forward."""

    def __init__(self, session, model):
        self.session = session
        self.paths = {}
        for path, m in model.named_modules():
            self.paths.setdefault(id(m), (path, type(m).__name__))
        self.stack = []
        self.handles = []

    def __enter__(self):
        from torch.nn.modules.module import (register_module_forward_hook,
                                             register_module_forward_pre_hook)
        self.handles.append(register_module_forward_pre_hook(self.pre))
        # Not always_call: when forward raises, the stack keeps the module that failed, for the
        # message (PyTorch calls an always_call hook there without the output it expects).
        self.handles.append(register_module_forward_hook(self.post))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def pre(self, module, args):
        entry = self.paths.get(id(module))
        if entry is not None:
            self.session.enter_module(*entry)
            self.stack.append(entry[0])

    def post(self, module, args, output):
        if id(module) in self.paths and self.stack:
            self.session.exit_module()
            self.stack.pop()

    def innermost(self):
        return self.stack[-1] if self.stack else None


@contextlib.contextmanager
def _modes(model, train):
    """model.train(train) for the run, and each module's own flag put back after."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.train(train)
    except (NotImplementedError, RuntimeError):  # a torch.export program's module refuses train()
        for m, _ in flags:
            m.training = train
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _meta_state(model, dtype):
    """Meta tensors in place of the module's parameters and buffers (one per storage, so tied
    weights stay tied), keyed by every name functional_call may look up."""
    made = {}
    state = {}

    def meta_of(t, parameter):
        key = id(t)
        if key not in made:
            d = dtype if (dtype is not None and t.is_floating_point()) else t.dtype
            m = torch.empty_strided(t.shape, t.stride(), dtype=d, device="meta")
            if parameter:
                m = nn.Parameter(m, requires_grad=t.requires_grad)
            made[key] = m
        return made[key]
    for name, p in model.named_parameters(remove_duplicate=False):
        state[name] = meta_of(p, True)
    for name, b in model.named_buffers(remove_duplicate=False):
        if b is not None:
            state[name] = meta_of(b, False)
    params = [made[id(p)] for p in dict(model.named_parameters()).values()]
    return state, params


# The sandbox's limits for every capture of this process: none for a user's own process (its CPU
# allocator left alone); the command line's engine sets --time-limit, --max-ops and
# --max-cpu-memory here (cli.engine).
LIMITS = {}


def run(model, args, kwargs, *, plan, optimizer=None, impl="auto", loss_fn=None,
        iterations=None, limits=None, default_dtype=torch.float32):
    """Captures one run as `plan` (_core.plan_run, footprint/plan.h) says: inference, a
    forward/loss/backward pass (training without an optimizer), or `iterations` training steps
    (the plan's). Returns (trace, info)."""
    limits = limits or LIMITS
    train, target = plan.train, plan.target
    dtype = precision_dtype(plan)
    autocast = f"torch.{plan.autocast_dtype}" if plan.autocast_dtype else ""
    make_optimizer, opt_name = (None, None)
    if train and optimizer is not None:
        make_optimizer, opt_name = optimizer_factory(optimizer, impl, plan)
    if iterations is None:
        iterations = plan.iterations if make_optimizer else 1
    from ._kernels import use_libtorch_meta_kernels
    use_libtorch_meta_kernels()
    state, params = _meta_state(model, dtype)
    info = {"optimizer": "", "iterations": iterations}
    session = _core.Session(train=train, target=target, sm=plan.sm, autocast=autocast,
                            multiprocessors=plan.multiprocessors,
                            seconds=float(limits.get("seconds", 600)),
                            memory_bytes=int(limits.get("memory_bytes", 0)),
                            ops=int(limits.get("ops", 2_000_000)),
                            # The user's process: its CPU allocator is left alone.
                            cpu_bytes=int(limits.get("cpu_bytes", 0)),
                            root_type=describe(model))
    hooks = _Hooks(session, model)
    error = ""
    keep = []
    try:
        # The meta tensors stand in the module's parameters and buffers for the whole run, as
        # torch.func.functional_call puts them there for one call: backward too, where
        # torch.utils.checkpoint runs the module's forward again and must find them, not the
        # module's own CPU tensors.
        with _modes(model, train), hooks, _fused_on_meta(), _fast_paths(), \
                _reparametrize_module(model, state, tie_weights=True, strict=False), \
                _Autocast(session, bool(autocast)) as amp:
            input_dtype = dtype or default_dtype
            x_args = [_materialize(a, input_dtype, dtype) for a in args]
            x_kwargs = {k: _materialize(v, input_dtype, dtype) for k, v in kwargs.items()}
            b = batch_of(args, kwargs)
            labels = None
            if train and b is not None:
                labels = torch.zeros(b, dtype=torch.long, device="meta")
            keep += [x_args, x_kwargs, labels]
            opt = None
            if make_optimizer is not None:
                session.phase("step", 0)
                trainable = [p for p in params if p.requires_grad]
                if not trainable:
                    raise ModelError("train=True with an optimizer, but no parameter requires grad")
                opt = make_optimizer(trainable)
                info["optimizer"] = f"{opt_name or type(opt).__name__} ({resolve_impl(opt, target)})"
                keep.append(opt)

            def forward():
                return model(*x_args, **x_kwargs)
            if not train:
                with torch.inference_mode():
                    session.phase("forward", 0)
                    amp.set(True)
                    try:
                        y = forward()
                    finally:
                        amp.set(False)
                keep.append(y)
            else:
                for it in range(iterations):
                    if opt is not None:
                        session.phase("zero_grad", it)
                        opt.zero_grad(set_to_none=plan.set_to_none)
                    session.phase("forward", it)
                    amp.set(True)
                    try:
                        y = forward()
                        session.phase("loss", it)
                        loss = loss_fn(y, labels) if loss_fn is not None else default_loss(y, labels)
                    finally:
                        amp.set(False)
                    if not isinstance(loss, torch.Tensor):
                        raise ModelError(f"loss_fn returned {type(loss).__name__}, not a tensor")
                    session.phase("backward", it)
                    if loss.requires_grad:
                        loss.backward()
                    del y, loss
                    if opt is not None:
                        session.phase("step", it)
                        opt.step()
    except ModelError:
        session.finish("")
        raise
    except Exception as e:  # the model's own code failed: say where, in one line
        error = explain(e, hooks.innermost(), e.__traceback__)
    try:
        trace = session.finish(error)
    except ValueError as e:
        raise ModelError(str(e)) from None
    del keep
    return trace, info
