"""Reports as Python objects: typed attributes with exact bytes, to_dict(), to_json(), the
command line's table as repr, an HTML table for Jupyter, and to_dataframe() with pandas.

Each report is built from the JSON the C++ printers write for `footprint ... --format json`, so
the Python objects and the command line can never disagree."""
import html
import json

from . import _core


def _key(k):
    return k.replace(" ", "_").replace("-", "_")


class Record:
    """A JSON object with its keys as attributes ("optimizer state" -> optimizer_state)."""

    def __init__(self, data):
        self._data = data

    def __getattr__(self, name):
        data = self.__dict__.get("_data", {})
        for k, v in data.items():
            if _key(k) == name:
                return _wrap(v)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}; it has "
                             f"{', '.join(_key(k) for k in data)}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | {_key(k) for k in self._data})

    def __getitem__(self, k):
        return _wrap(self._data[k])

    def keys(self):
        return self._data.keys()

    def to_dict(self):
        return json.loads(json.dumps(self._data))

    def __repr__(self):
        return f"{type(self).__name__}({json.dumps(self._data)})"

    def __eq__(self, other):  # another Record, or the dict it was made from
        if isinstance(other, dict):
            return self._data == other
        return isinstance(other, Record) and other._data == self._data


def _wrap(v):
    if isinstance(v, dict):
        return Record(v)
    if isinstance(v, list):
        return [_wrap(x) for x in v]
    return v


def _human(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} B" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1024


def _html_table(title, header, rows, notes=()):
    head = "".join(f"<th style='text-align:left'>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='text-align:{'right' if isinstance(c, (int, float)) or str(c)[:1].isdigit() else 'left'}'>"
                                    f"{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    foot = "".join(f"<p style='margin:2px 0;color:#555'>{html.escape(n)}</p>" for n in notes)
    return (f"<div class='footprint'><b>{html.escape(title)}</b>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}</div>")


class Report(Record):
    """Common to every report: the table as repr, JSON, and a DataFrame of its main table."""

    _table = ""

    def __repr__(self):
        return self._table.rstrip("\n")

    def __str__(self):
        return self._table

    def to_json(self, indent=2):
        return json.dumps(self._data, indent=indent)

    def _rows(self):
        return [], []

    def to_dataframe(self):
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_dataframe() needs pandas: pip install pandas") from None
        header, rows = self._rows()
        return pd.DataFrame(rows, columns=header)


class ParamsReport(Report):
    """footprint.params(model): parameters and buffers, tied weights once."""

    def __init__(self, data, table):
        super().__init__(data)
        self._table = table

    @property
    def total_params(self):
        return self._data["parameters"]["numel"]

    @property
    def trainable_params(self):
        return self._data["trainable"]["numel"]

    @property
    def param_bytes(self):
        return self._data["parameters"]["bytes"]

    @property
    def buffer_bytes(self):
        return self._data["buffers"]["bytes"]

    def _rows(self):
        header = ["module", "type", "depth", "parameters", "parameter_bytes", "buffers", "buffer_bytes"]
        rows = [[m["path"], m["type"], m["depth"], m["parameters"]["numel"], m["parameters"]["bytes"],
                 m["buffers"]["numel"], m["buffers"]["bytes"]] for m in self._data["modules"]]
        return header, rows

    def _repr_html_(self):
        header, rows = self._rows()
        return _html_table(f"{self._data['source']}: {self.total_params:,} parameters "
                           f"({_human(self.param_bytes)})", header, rows)


class SummaryReport(Report):
    """footprint.summary(model, ...): one row per module call, FLOPs, MACs and activations."""

    def __init__(self, native, data, table, depth):
        super().__init__(data)
        self._native = native
        self._table = table
        self._depth = depth

    @property
    def total_params(self):
        return self._data["params"]

    @property
    def trainable_params(self):
        return self._data["trainable"]

    @property
    def forward_flops(self):
        return self._data["forward"]["flops"]

    @property
    def forward_macs(self):
        return self._data["forward"]["macs"]

    @property
    def rows(self):
        return [Record(r) for r in self._data["modules"]]

    def by_op(self):
        """fvcore's per-op view, as a table."""
        return self._native.print(format="table", depth=self._depth, by_op=True)

    def thop(self):
        """thop's two lines, with the convention named."""
        return self._native.thop()

    def _rows(self):
        rows = self._data["modules"]
        if not rows:
            return [], []
        header = [k for k in rows[0] if not isinstance(rows[0][k], (dict, list))]
        extra = [k for k in ("output_shapes",) if k in rows[0]]
        return header + extra, [[r.get(k) for k in header + extra] for r in rows]

    def _repr_html_(self):
        header, rows = self._rows()
        cols = [h for h in header if h in ("path", "type", "output_shapes", "params", "macs", "flops", "activation_bytes", "depth")]
        idx = [header.index(c) for c in cols]
        return _html_table(f"{self._data['source']}: {self.total_params:,} parameters, "
                           f"{self.forward_flops:,} forward FLOPs", cols,
                           [[r[i] for i in idx] for r in rows], self._data.get("notes", []))


class MemoryReport(Report):
    """footprint.memory(model, ...): the peak of inference or of a training step, by category,
    as PyTorch's CUDA caching allocator would report it, and whether it fits a GPU."""

    def __init__(self, native, capture, table):
        super().__init__(json.loads(native.print(format="json")))
        self._native = native
        self._capture = capture  # (model, trace, analyze arguments) to ask about other GPUs
        self._table = table

    # The numbers users ask for first.
    @property
    def allocated_peak(self):
        """torch.cuda.max_memory_allocated() (CPU: the profiler's allocated peak), in bytes."""
        return self._data["allocated_peak"]

    @property
    def reserved_peak(self):
        """torch.cuda.max_memory_reserved(), in bytes (CUDA only)."""
        return self._data.get("reserved_peak")

    @property
    def device_overhead(self):
        return self._data.get("device_overhead", 0)

    @property
    def by_category(self):
        """Bytes live at the peak, per category (parameters, gradients, optimizer state,
        activations, transient, input, output, buffers)."""
        return dict(self._data["peak"]["by_category"])

    @property
    def margin(self):
        return self._data.get("margin")

    def fits(self, gpu=None):
        """Whether the run fits `gpu` (a name such as "h100" or a size such as "24GiB"), or the
        GPU the report was made for (None when it names none)."""
        if gpu is None:
            return self._data.get("fits")
        return self.on(gpu)._data.get("fits")

    def on(self, gpu):
        """The same run on another GPU: only the allocator's replay is run again."""
        model, trace, kw = self._capture
        kw = dict(kw, gpu=str(gpu))
        if kw["target"] == "cpu":
            raise ValueError("a report made for device='cpu' has no GPU to change")
        native = _core.analyze(model, trace, **kw)
        return MemoryReport(native, (model, trace, kw), native.print(format="table"))

    def rank_gpus(self):
        """Every GPU footprint knows: those that fit first, the smallest first, then those that do
        not, the closest first (margin: bytes to spare, negative when short). "Which GPU do I
        need?"."""
        rows = []
        for key, name, total, context, sm in _core.devices():
            r = self.on(key)
            rows.append(Record({"gpu": key, "name": name, "total": total, "fits": bool(r.fits()),
                                "margin": r.margin, "reserved_peak": r.reserved_peak}))
        fitting = sorted((r for r in rows if r.fits), key=lambda r: (r.total, r.gpu))
        short = sorted((r for r in rows if not r.fits), key=lambda r: -r.margin)
        return fitting + short

    def save_html(self, path):
        """The interactive page of `footprint memory --html` (needs timeline=True)."""
        with open(path, "w") as f:
            f.write(self._native.html())

    def save_snapshot(self, path):
        """A memory snapshot that pytorch.org/memory_viz opens (needs timeline=True)."""
        with open(path, "wb") as f:
            f.write(self._native.snapshot())

    def _rows(self):
        header = ["category", "bytes"]
        return header, [[k, v] for k, v in self._data["peak"]["by_category"].items()]

    def _repr_html_(self):
        d = self._data
        rows = [[k, f"{v:,}", _human(v)] for k, v in d["peak"]["by_category"].items()]
        rows.append(["allocated peak", f"{d['allocated_peak']:,}", _human(d["allocated_peak"])])
        if d.get("reserved_peak") is not None:
            rows.append(["reserved peak", f"{d['reserved_peak']:,}", _human(d["reserved_peak"])])
        title = f"{d['source']}: {d['mode']}" + (f", {d['optimizer']}" if d.get("optimizer") else "") + \
            f", {d['precision']}, peak {_human(d['allocated_peak'])} in {d['peak']['phase']}"
        if d.get("gpu"):
            title += f" on {d['gpu']['name']}: " + ("fits" if d.get("fits") else "does not fit") + \
                f" ({_human(d.get('margin', 0))} to spare)" if d.get("fits") is not None else ""
        modules = [[m["module"] or "(model)", m["type"], _human(m["bytes"])] for m in d.get("modules_at_peak", [])]
        return (_html_table(title, ["at the peak", "bytes", ""], rows, d.get("notes", []))
                + _html_table("modules at the peak", ["module", "type", "bytes"], modules))


def _is_size(text):
    return isinstance(text, str) and _core.size_parse(text) is not None


class FitReport(Report):
    """footprint.fit(model, ...): the largest batch that fits, with the reports at it and past it."""

    def __init__(self, batch, fits, next_, captures):
        super().__init__({"batch": batch, "fits": fits.to_dict() if fits else None,
                          "next": next_.to_dict() if next_ else None, "captures": captures})
        self.batch = batch
        self.at_batch = fits
        self.past_batch = next_
        self.captures = captures
        self.gaps = (fits or next_)._data.get("gaps", [])
        gpu = (fits or next_)._data.get("gpu", {}).get("name", "the device")
        self._table = (f"largest batch that fits {gpu}: {batch}\n"
                       + (f"  at {batch}: reserved peak {_human(fits.reserved_peak or fits.allocated_peak)}, "
                          f"{_human(fits.margin)} to spare\n" if fits and batch else "")
                       + (f"  at {batch + 1}: does not fit ({_human(-next_.margin)} short)\n" if next_ else ""))

    def _repr_html_(self):
        return f"<pre>{html.escape(self._table)}</pre>"

    def print(self, format="table"):
        """The report as `footprint fit --format FORMAT` prints it: table, json, csv or md."""
        return _core.print_fit(self.batch, self.at_batch._native, self.past_batch._native,
                               self.captures, format)
