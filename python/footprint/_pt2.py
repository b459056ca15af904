"""A torch.export program (.pt2) as an nn.Module whose forward runs the program's graph op by op.

A .pt2 someone downloaded is data. torch.export.load would unpickle its weights and sample inputs
with weights_only=False and eval each symbolic size's expression with sympy, so footprint never
calls it on such a file. footprint's own reader (src/formats/pt2.cpp, through _core.read_pt2)
reads the program's JSON, checks every field (known dtypes, sizes in 128 bits, bounded counts and
nesting, every value made before it is read, every op an aten op the sandbox does not refuse) and
writes out a document of plain data that this runner follows:

- The parameters, buffers and constants become meta tensors at their names (tied ones, which
  share their bytes in the archive, one tensor), in a tree of modules named as the program's.
- Each node's target is looked up by name as an aten op overload (torch.ops.aten.<op>.<overload>)
  and called with the document's arguments; every device argument is meta. A few Python
  operators that export records on sizes (operator.mul on a sym_size) apply to the numbers.
- Each value is dropped after its last use, as the GraphModule that ExportedProgram.module()
  generates drops it, so that the run holds what the real one holds.
- The nodes' nn_module_stack becomes module calls: one stand-in module per path, called around
  its nodes, so that the report attributes ops and memory to the program's modules.

The run itself happens in footprint's capture session, inside the sandbox (docs/engine.md).
"""
import json
import math
import operator
import re

import torch
import torch.nn as nn

from . import _core

_DTYPES = {name: getattr(torch, name) for name in (
    "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64", "complex64",
    "complex128", "bool", "bfloat16", "uint16", "float8_e4m3fn", "float8_e5m2",
    "float8_e4m3fnuz", "float8_e5m2fnuz") if hasattr(torch, name)}
_MEMORY_FORMATS = {"contiguous_format": torch.contiguous_format,
                   "channels_last": torch.channels_last,
                   "channels_last_3d": torch.channels_last_3d,
                   "preserve_format": torch.preserve_format}
_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_LARGEST = 1 << 63  # a size footprint models is below 2^63


def _pow(a, b):
    if isinstance(b, int) and abs(b) > 64:
        raise ValueError(f"a size computed as {a} ** {b} is too large to model")
    return a ** b


_BUILTINS = {
    "_operator.getitem": operator.getitem, "_operator.add": operator.add,
    "_operator.sub": operator.sub, "_operator.mul": operator.mul,
    "_operator.floordiv": operator.floordiv, "_operator.truediv": operator.truediv,
    "_operator.mod": operator.mod, "_operator.neg": operator.neg, "_operator.pow": _pow,
    "_operator.eq": operator.eq, "_operator.ne": operator.ne, "_operator.lt": operator.lt,
    "_operator.le": operator.le, "_operator.gt": operator.gt, "_operator.ge": operator.ge,
    "torch.sym_max": max, "torch.sym_min": min, "torch.sym_float": float, "torch.sym_int": int,
    "torch.sym_not": operator.not_, "math.ceil": math.ceil, "math.floor": math.floor,
}
_NAME = re.compile(r"[A-Za-z0-9_]+")


class _Call(nn.Module):
    """A module of the program, as its nodes' nn_module_stack names it: called around its nodes."""

    def forward(self, run):
        return run()


_CLASSES = {}


def _class(base, name):
    """A subclass of `base` named as the program's module type (the reports show type names)."""
    name = name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or "") else base.__name__
    key = (base, name)
    if key not in _CLASSES:
        _CLASSES[key] = type(name, (base,), {"__module__": "footprint.program"})
    return _CLASSES[key]


def _literal(v):
    """An argument with no reference to the graph's values, made once."""
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, list):
        return [_literal(x) for x in v]
    if "dtype" in v:
        if v["dtype"] not in _DTYPES:
            raise ValueError(f"dtype {v['dtype']} is not in this torch")
        return _DTYPES[v["dtype"]]
    if "memory_format" in v:
        return _MEMORY_FORMATS[v["memory_format"]]
    if "layout" in v:
        return torch.strided
    if "device" in v:
        return torch.device("meta")  # every tensor runs on meta, whatever the program names
    if "string" in v:
        return v["string"]
    if "float" in v:
        return _FLOATS[v["float"]]
    raise ValueError(f"an argument footprint does not read: {json.dumps(v)[:60]}")


class _Ref:
    """A value the graph made, by name: resolved as the node runs."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class _Refs(_Ref):
    """A list of tensors the graph made (None where the program has none)."""


def _prepare(v):
    """An argument as the node keeps it: literals made once, references kept as _Ref."""
    if isinstance(v, list):
        return [_prepare(x) for x in v]
    if isinstance(v, dict) and "ref" in v:
        return _Ref(v["ref"])
    if isinstance(v, dict) and "refs" in v:
        return _Refs(v["refs"])
    return _literal(v)


def _has_ref(v):
    return isinstance(v, _Ref) or (isinstance(v, list) and any(_has_ref(x) for x in v))


def _value(v, env):
    if isinstance(v, _Refs):
        return [None if n is None else env[n] for n in v.name]
    if isinstance(v, _Ref):
        return env[v.name]
    if isinstance(v, list):
        return [_value(x, env) for x in v]
    return v


def _check_sizes(target, args):
    """A Python operator works on sizes: numbers (getitem: a sequence and an index), never on
    other values a hostile program could hand it (a list times 10^9)."""
    numbers = args[1:] if target == "_operator.getitem" else args
    ok = all(isinstance(a, (int, float, bool)) for a in numbers)
    if target == "_operator.getitem":
        ok = ok and len(args) == 2 and isinstance(args[0], (list, tuple))
    if not ok:
        raise ValueError(f"{target} is given {', '.join(type(a).__name__ for a in args)}; "
                         "footprint runs it on sizes only")


class _Node:
    __slots__ = ("fn", "target", "args", "kwargs", "outputs", "dynamic", "free")

    def __init__(self, doc):
        self.target = doc["target"]
        if self.target in _BUILTINS:
            self.fn = _BUILTINS[self.target]
        else:
            op, _, overload = self.target.partition(".")
            name = op.split("::", 1)[1]
            try:
                self.fn = getattr(getattr(torch.ops.aten, name), overload)
            except (AttributeError, RuntimeError):
                raise ValueError(f"the program calls {self.target}, which torch "
                                 f"{torch.__version__} does not have") from None
        args, kwargs = doc["args"], dict(doc["kwargs"])
        if self.target not in _BUILTINS:
            # Factory and conversion ops make their outputs on meta, whatever the program says
            # (a factory given no device would make real CPU memory).
            names = {a.name for a in self.fn._schema.arguments}
            if "device" in names:
                kwargs["device"] = {"device": "meta"}
            if "pin_memory" in names and "pin_memory" in kwargs:
                kwargs["pin_memory"] = False
        self.args = [_prepare(a) for a in args]
        self.kwargs = {k: _prepare(v) for k, v in kwargs.items()}
        self.dynamic = any(_has_ref(a) for a in self.args) or \
            any(_has_ref(v) for v in self.kwargs.values())
        self.outputs = doc["outputs"]
        self.free = ()

    def run(self, env):
        if self.dynamic:
            args = [_value(a, env) for a in self.args]
            kwargs = {k: _value(v, env) for k, v in self.kwargs.items()}
        else:
            args, kwargs = self.args, self.kwargs
        if self.target in _BUILTINS:
            _check_sizes(self.target, args)
        result = self.fn(*args, **kwargs)
        if self.target in _BUILTINS and isinstance(result, int) and abs(result) >= _LARGEST:
            raise ValueError(f"{self.target} computed a size of {result}, too large to model")
        outs = self.outputs
        if len(outs) == 1:
            self._assign(outs[0], result, env)
        else:
            if not isinstance(result, (tuple, list)) or len(result) != len(outs):
                raise ValueError(f"{self.target} returned {type(result).__name__}, where the "
                                 f"program has {len(outs)} outputs")
            for slot, r in zip(outs, result):
                self._assign(slot, r, env)
        for name in self.free:
            env.pop(name, None)

    def _assign(self, slot, r, env):
        if slot is None:
            return
        if "ref" in slot:
            env[slot["ref"]] = r
        else:
            names = slot["refs"]
            if not isinstance(r, (tuple, list)) or len(r) != len(names):
                raise ValueError(f"{self.target} returned {type(r).__name__}, where the program "
                                 f"has {len(names)} tensors")
            for n, t in zip(names, r):
                env[n] = t


class Program(nn.Module):
    """A torch.export program read by footprint: its parameters and buffers as meta tensors, and
    a forward that runs its graph op by op. program.inputs: [(shape, dtype)] as exported (a
    symbolic size at its hint); program.symbolic: for each input, the dimensions that may vary."""

    def __init__(self, doc, source):
        super().__init__()
        self.source = source
        self._modules_at = {"": self}
        calls = doc["calls"]
        self._stubs = [None] * len(calls)
        for i, call in enumerate(calls):
            if i:
                self._stubs[i] = self._module_at(call["path"], call["type"])
        tensors = {}  # a storage -> its tensor, so that tied parameters stay one

        def made(entry, parameter):
            key = entry["storage"]
            if key not in tensors:
                dtype = _literal({"dtype": entry["dtype"]})
                strides = entry["strides"]
                if len(strides) == len(entry["shape"]):
                    t = torch.empty_strided(entry["shape"], strides, dtype=dtype, device="meta")
                else:
                    t = torch.empty(entry["shape"], dtype=dtype, device="meta")
                if parameter:
                    t = nn.Parameter(t, requires_grad=bool(entry["trainable"]) and
                                     (t.is_floating_point() or t.is_complex()))
                tensors[key] = t
            return tensors[key]

        self._places = {}  # graph value -> (holder module, kind, name)
        for kind, entries in (("p", doc["parameters"]), ("b", doc["buffers"]),
                              ("c", doc["constants"])):
            for e in entries:
                path, _, name = e["name"].rpartition(".")
                holder = self._module_at(path, None, required=True)
                if not _NAME.fullmatch(name) or hasattr(holder, name):
                    raise ValueError(f"the program's tensor {e['name']!r} has a name footprint "
                                     "cannot give a module's tensor")
                t = made(e, kind == "p")
                if kind == "p":
                    holder.register_parameter(name, t)
                else:
                    holder.register_buffer(name, t, persistent=bool(e.get("persistent", False)))
                self._places[e["value"]] = (holder, kind, name)
        self._inputs = doc["inputs"]
        self.inputs = [([d if isinstance(d, int) else d["hint"] for d in i["shape"]],
                        _DTYPES[i["dtype"]]) for i in doc["inputs"]]
        self.symbolic = [[k for k, d in enumerate(i["shape"]) if not isinstance(d, int)]
                         for i in doc["inputs"]]
        self._symbols = doc.get("symbols", {})
        self._constants = {k: _prepare(v) for k, v in doc["constant_inputs"].items()}
        self._nodes = [_Node(n) for n in doc["nodes"]]
        self._outputs = doc["outputs"]
        self._mutations = doc["mutations"]
        self._plan_lifetimes(doc)
        self._plan_calls(doc)

    # -------------------------------------------------------------- building
    def _module_at(self, path, type_name, required=False):
        """The module at `path`, made (as a _Call named `type_name`) where missing. A path that
        cannot be a module's name is attributed to its parent, unless a tensor lives there."""
        if path in self._modules_at:
            return self._modules_at[path]
        parent_path, _, name = path.rpartition(".")
        parent = self._module_at(parent_path, None, required)
        if parent is None:
            return None
        if not _NAME.fullmatch(name) or (name not in parent._modules and hasattr(parent, name)):
            if required:
                raise ValueError(f"the program's module path {path!r} is not a name footprint "
                                 "can give a module")
            self._modules_at[path] = None
            return None
        if name not in parent._modules:
            parent.add_module(name, _class(_Call, type_name or "Module")())
        self._modules_at[path] = parent._modules[name]
        return self._modules_at[path]

    def _plan_lifetimes(self, doc):
        """Each value is dropped after the node that reads it last; a value nothing reads, right
        after the node that makes it; outputs and mutated values live to the end."""
        last = {}
        for i, n in enumerate(doc["nodes"]):
            for name in _refs(n["args"]) + _refs(n["kwargs"]):
                last[name] = i
            for name in _refs(n["outputs"]):
                last.setdefault(name, i)
        kept = set(_refs(doc["outputs"])) | {m["value"] for m in doc["mutations"]}
        free = [[] for _ in doc["nodes"]]
        for name, i in last.items():
            if name not in kept:
                free[i].append(name)
        for node, names in zip(self._nodes, free):
            node.free = tuple(names)

    def _plan_calls(self, doc):
        """Each call's items in order: its own nodes, and its child calls where they begin."""
        calls = doc["calls"]
        parent = [c["parent"] for c in calls]
        first = [None] * len(calls)
        for i, n in enumerate(doc["nodes"]):
            c = n["call"]
            while c > 0 and first[c] is None:
                first[c] = i
                c = parent[c]
        items = [[] for _ in calls]
        for i, n in enumerate(doc["nodes"]):
            items[n["call"]].append((i, 0, i))
        for c in range(1, len(calls)):
            if first[c] is not None:
                items[parent[c]].append((first[c], 1, c))
        self._items = [[(kind, x) for _, kind, x in sorted(its)] for its in items]

    # -------------------------------------------------------------- running
    def check_inputs(self, shapes):
        """Raises ValueError unless `shapes` could be the program's inputs: as many, each of the
        exported rank, static sizes as exported, each symbol one size inside its range."""
        def text(dims):
            return "x".join(str(d if isinstance(d, int) else d.get("symbol", "?")) for d in dims)
        if len(shapes) != len(self._inputs):
            raise ValueError(f"the program takes {len(self._inputs)} inputs "
                             f"({', '.join(text(i['shape']) for i in self._inputs)}); "
                             f"{len(shapes)} given")
        seen = {}
        for k, (shape, spec) in enumerate(zip(shapes, self._inputs)):
            dims = spec["shape"]
            if len(shape) != len(dims):
                raise ValueError(f"input {k + 1} of the program is {text(dims)}; "
                                 f"{'x'.join(map(str, shape))} has another rank")
            for d, (n, dim) in enumerate(zip(shape, dims)):
                if isinstance(dim, int):
                    if n != dim:
                        raise ValueError(
                            f"input {k + 1} of the program is {text(dims)}: dimension {d} is "
                            f"exported as {dim}, and {n} was given (export it with "
                            "dynamic_shapes to vary it)")
                elif "symbol" in dim:
                    s = dim["symbol"]
                    if seen.setdefault(s, n) != n:
                        raise ValueError(f"the program's size {s} is {seen[s]} in one input and "
                                         f"{n} in another")
                    r = self._symbols.get(s, {})
                    if n < r.get("min_val", 0) or ("max_val" in r and n > r["max_val"]):
                        raise ValueError(f"the program's size {s} (input {k + 1}, dimension "
                                         f"{d}) is exported for {r.get('min_val', 0)} to "
                                         f"{r.get('max_val', 'any')}; {n} was given")

    def forward(self, *inputs):
        self.check_inputs([tuple(x.shape) for x in inputs])
        env = dict(self._constants)
        for value, (holder, kind, name) in self._places.items():
            env[value] = (holder._parameters if kind == "p" else holder._buffers)[name]
        for spec, x in zip(self._inputs, inputs):
            env[spec["value"]] = x
        inputs = None
        self._run(0, env)
        for m in self._mutations:
            if "target" in m:
                holder, kind, name = self._place_of(m["target"])
                dst = (holder._parameters if kind == "p" else holder._buffers)[name]
            else:
                dst = env[m["input"]]
            with torch.no_grad():
                torch.ops.aten.copy_.default(dst, env[m["value"]])
        outs = [_value(_prepare(o), env) for o in self._outputs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _place_of(self, fqn):
        path, _, name = fqn.rpartition(".")
        holder = self._modules_at.get(path)
        for kind, table in (("p", "_parameters"), ("b", "_buffers")):
            if holder is not None and name in getattr(holder, table):
                return holder, kind, name
        raise ValueError(f"the program mutates {fqn!r}, which it does not hold")

    def _run(self, call, env):
        for kind, x in self._items[call]:
            if kind == 0:
                self._nodes[x].run(env)
            elif self._stubs[x] is not None:
                self._stubs[x](lambda c=x: self._run(c, env))
            else:
                self._run(x, env)


def _refs(v):
    if isinstance(v, list):
        return [n for x in v for n in _refs(x)]
    if isinstance(v, dict):
        if "ref" in v:
            return [v["ref"]]
        if "refs" in v:
            return [n for n in v["refs"] if n is not None]
        return [n for x in v.values() for n in _refs(x)]
    return []


def load(path, seconds=0.0):
    """The .pt2 at `path` as a Program (an nn.Module on meta). Raises ValueError with one line
    for a file footprint does not run."""
    doc = json.loads(_core.read_pt2(path, float(seconds)))
    root = doc["calls"][0]["type"] or "Program"
    return _class(Program, root)(doc, path)
