"""footprint.llm: a language model from its config.json, built by transformers itself.

The config is read by the config class of its `model_type` (so every field the file leaves out
takes transformers' own default), the model class its `architectures` names is built from it under
torch.device("meta") (no weights, no memory), and the engine runs that model's own code: any
architecture the installed transformers knows, with its exact op sequence and lifetimes.
"""
import json
import os
import re

import torch

from . import _core
from ._reports import Report, _human, _html_table

# The fields transformers' MoE configs name their experts by (routed, per token).
_EXPERTS = ("num_local_experts", "num_experts", "n_routed_experts")
_TOP_K = ("num_experts_per_tok", "moe_topk", "top_k")


_HUB_PART = re.compile(r"[A-Za-z0-9._-]{1,96}")


def is_hub_name(text):
    """"org/name" as the Hub names repositories, and no such path here (footprint/hub.h)."""
    parts = text.split("/")
    return (len(parts) == 2 and not os.path.exists(text)
            and all(_HUB_PART.fullmatch(p) and p not in (".", "..") for p in parts))


def hub_config(name, revision=None):
    """The path of a Hub model's config.json, by huggingface_hub: from its cache, downloaded
    there first unless HF_HUB_OFFLINE is set; its token and endpoint are huggingface_hub's."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise FileNotFoundError(f"{name}: no such file (a Hub name needs huggingface_hub)") \
            from None
    try:
        return hf_hub_download(name, "config.json", revision=revision)
    except Exception as e:  # huggingface_hub's own kinds: not cached offline, no such repository
        raise FileNotFoundError(f"{name}: no such file, and huggingface_hub cannot give its "
                                f"config.json ({type(e).__name__}: {_first_line(e)})") from None


def load_config(config, revision=None):
    """A transformers config from a config.json path, its directory, a Hub name ("org/name", at
    `revision`), a dict or a config."""
    import transformers
    if isinstance(config, transformers.PretrainedConfig):
        return config, type(config).__name__
    if isinstance(config, dict):
        data, where = dict(config), "config"
    elif isinstance(config, (str, os.PathLike)):
        where = os.fspath(config)
        if is_hub_name(where):
            where = hub_config(where, revision)
        if os.path.isdir(where):
            where = os.path.join(where, "config.json")
        if not os.path.exists(where):
            raise FileNotFoundError(f"{where}: no such file")
        try:  # read under the C++ path's limits: its size and nesting
            data = json.loads(_core.read_config_text(where))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{where}: not a JSON config ({e})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object, found {type(data).__name__}")
    else:
        raise TypeError(f"config: expected a path, a dict or a transformers config, not "
                        f"{type(config).__name__}")
    model_type = data.get("model_type")
    if not isinstance(model_type, str):
        raise ValueError(f"{where}: no model_type field (llama, qwen3, gemma2, ...)")
    if model_type not in transformers.CONFIG_MAPPING:
        raise ValueError(f"{where}: model_type {model_type!r} is not one transformers "
                         f"{transformers.__version__} knows")
    try:
        return transformers.CONFIG_MAPPING[model_type].from_dict(data), where
    except Exception as e:  # transformers' validators raise their own kinds: one line, the file
        raise ValueError(f"{where}: {_first_line(e)}") from None


def _first_line(e):
    text = str(e).strip()
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    # huggingface_hub's validation error puts the cause on its last line.
    return (lines[-1] if len(lines) > 1 and "validation error" in lines[0] else lines[0]) \
        if lines else type(e).__name__


def model_class(cfg, where="config"):
    """The class `architectures` names, else the causal LM of the config's type, else its base
    model."""
    import transformers
    names = list(getattr(cfg, "architectures", None) or [])
    for name in names:
        cls = getattr(transformers, name, None) if isinstance(name, str) else None
        if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel):
            return cls
    for auto in (transformers.AutoModelForCausalLM, transformers.AutoModel):
        try:
            return auto._model_mapping[type(cfg)]
        except KeyError:
            continue
    raise ValueError(f"{where}: transformers {transformers.__version__} has no model class "
                     f"{' or '.join(names) or 'for model_type ' + repr(cfg.model_type)}")


def _inference_dtype(cfg):
    """The config's dtype when it is 16-bit, else bfloat16: nobody serves fp32 weights (the C++
    path's default too)."""
    d = getattr(cfg, "dtype", None)  # transformers 5's name for torch_dtype
    if isinstance(d, str):
        d = getattr(torch, d, None)
    return d if d in (torch.float16, torch.bfloat16) else torch.bfloat16


def build(cfg, cls, dtype):
    """The model on the meta device, in eval mode, its parameters in dtype."""
    with torch.device("meta"):
        model = cls._from_config(cfg)
    return model.to(dtype).eval()


def _first(cfg, names):
    for n in names:
        v = getattr(cfg, n, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def parameter_counts(model, cfg):
    """Total parameters (tied ones once, as num_parameters() counts), the routed experts' share,
    and those active per token: all but the routed experts, plus top-k of n experts' worth."""
    seen, total, experts = set(), 0, 0
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        # Routed experts: ".experts." (Mixtral, Qwen-MoE, DeepSeek), not "shared_experts".
        if re.search(r"(^|\.)experts\.", name):
            experts += p.numel()
    n, k = _first(cfg, _EXPERTS), _first(cfg, _TOP_K)
    active = total if not (experts and n and k) else total - experts + experts * k // n
    return total, experts, active, n, k


def _generate_kwargs(model):
    """generate()'s own choice for a causal LM: logits for the last token only."""
    import inspect
    params = inspect.signature(model.forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


def _decodes(model, cfg):
    return (not getattr(cfg, "is_encoder_decoder", False) and hasattr(model, "can_generate")
            and model.can_generate())


def _new_cache(cfg, cache, length):
    import transformers
    if cache == "static":
        return transformers.StaticCache(config=cfg, max_cache_len=length)
    return None  # the model makes the DynamicCache its config asks for (sliding layers included)


def _prefill_kwargs(model, cfg, cache, max_length):
    """What generate() passes a causal LM's prefill: use_cache, logits for the last token, and a
    StaticCache of max_length tokens when asked for (else the model makes its DynamicCache)."""
    kw = {"use_cache": True, **_generate_kwargs(model)}
    made = _new_cache(cfg, cache, max_length)
    if made is not None:
        kw["past_key_values"] = made
    return kw


def _prefilled_cache(model, cfg, batch, length, cache, max_length):
    """The KV cache after a prefill of `length` tokens, made on meta outside any recording."""
    ids = torch.zeros(batch, length, dtype=torch.long, device="meta")
    with torch.inference_mode():
        return model(input_ids=ids, **_prefill_kwargs(model, cfg, cache, max_length)) \
            .past_key_values


class _WholeSequences:
    """Without a cache or an attention mask (training), transformers asks whether the batch packs
    several sequences in a row (masking_utils.find_packed_sequence_indices), from the position
    ids' values, which meta does not have. Inside this context it answers "no", as for any batch of
    whole sequences; the real check's temporaries are a few batch x length int64 tensors."""

    def __enter__(self):
        from transformers import masking_utils
        self._module = masking_utils
        self._real = getattr(masking_utils, "find_packed_sequence_indices", None)
        if self._real is not None:
            masking_utils.find_packed_sequence_indices = lambda position_ids: None

    def __exit__(self, *exc):
        if self._real is not None:
            self._module.find_packed_sequence_indices = self._real


# What Megatron-style tensor parallelism splits over the ranks: heads (q, k, v and o's columns),
# the MLP's units (and each expert's), and the vocabulary (padded to a multiple).
_TP_SPLIT = ("num_attention_heads", "num_key_value_heads", "intermediate_size",
             "moe_intermediate_size")


def tensor_parallel_config(cfg, tp, where):
    """The config of one of `tp` tensor-parallel ranks, as the C++ path shards its modules
    (src/llm/transformer.cpp, dims_of): heads, key/value heads and MLP units divided, the head
    size kept, the vocabulary divided rounding up, the head untied from the embeddings."""
    if tp == 1:
        return cfg
    for field in ("hidden_size", "num_attention_heads", "intermediate_size", "vocab_size"):
        if not isinstance(getattr(cfg, field, None), int):
            raise ValueError(f"{where}: tp={tp} needs a decoder config with hidden_size, "
                             f"num_attention_heads, intermediate_size and vocab_size "
                             f"({cfg.model_type} has no {field})")
    data = cfg.to_dict()
    data["head_dim"] = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    for field in _TP_SPLIT:
        value = data.get(field)
        if isinstance(value, int) and value > 0:
            if value % tp:
                raise ValueError(f"{where}: {field} {value} cannot be split over tensor-parallel "
                                 f"degree {tp}")
            data[field] = value // tp
    data["vocab_size"] = -(-cfg.vocab_size // tp)
    data["tie_word_embeddings"] = False
    return type(cfg).from_dict(data)


def _decoder_layer(model):
    """The first module of the class transformers keeps whole when it splits a model
    (`_no_split_modules`: LlamaDecoderLayer, ...): one layer."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    for m in model.modules():
        if type(m).__name__ in names:
            return m
    return None


def shard_plan(model, shard, gpus, tp, precision):
    """The sharding pass's plan for one rank, as the planner makes it for both paths
    (footprint/plan.h, plan_sharding), from one decoder layer's parameters at the dtypes the run
    gives them (precision "bf16" casts the floating ones)."""
    if shard == "none" or gpus // tp <= 1:
        return None
    from . import _plan
    plan = _plan(precision=precision)
    cast = getattr(torch, plan.parameters_dtype) if plan.parameters_dtype else None

    def size(p):
        return (cast.itemsize if cast is not None and p.is_floating_point()
                else p.element_size())
    layer = _decoder_layer(model)
    if layer is None:
        raise ValueError(f"{type(model).__name__}: no decoder layer (_no_split_modules) to gather "
                         f"for shard={shard!r}")
    tensors = {id(p): p for p in layer.parameters()}.values()
    divisor, gathered, drop = _core.plan_sharding(
        shard, gpus, tp, plan.autocast_dtype is not None, numel=sum(p.numel() for p in tensors),
        bytes=sum(p.numel() * size(p) for p in tensors),
        trainable_bytes=sum(p.numel() * size(p) for p in tensors if p.requires_grad))
    return {"shard_divisor": divisor, "shard_gathered": gathered, "drop_weight_casts": drop}


def apply_lora(model, rank, alpha, targets, where):
    """peft's LoRA on the model, as a user makes it: get_peft_model with a LoraConfig of rank,
    alpha and target_modules (None: peft's default for the model_type; "all-linear"; names),
    lora_dropout 0 (peft's default). The adapters are made on meta; the base is frozen."""
    try:
        import peft
    except ImportError:
        raise ImportError("lora: LoRA adapters are built by peft, which is not installed "
                          "(pip install peft)") from None
    if isinstance(targets, str) and targets != "all-linear":
        targets = [t for t in targets.split(",") if t]
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as known
    model_type = getattr(model.config, "model_type", None)
    if not targets and model_type not in known:
        raise ValueError(f"{where}: peft {peft.__version__} has no default LoRA targets for "
                         f"model_type {model_type!r}; name them (lora_targets / --lora-targets: "
                         f"q_proj,v_proj, or all-linear)")
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0,
                             target_modules=targets or None)
    try:
        with torch.device("meta"):
            return peft.get_peft_model(model, config)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{where}: LoRA on {type(model).__name__} (target_modules "
                         f"{targets or 'default'}): {_first_line(e)}") from None


def _unique_parameters(model):
    return {id(p): p for p in model.parameters()}.values()


class _RouterOutputs:
    """The outputs of a mixture of experts' routers (the modules whose class is a router:
    MixtralTopKRouter, DeepseekV3TopkRouter, ...: logits, top-k weights and indices) in one run,
    from forward hooks that keep sizes, never tensors, so that no lifetime changes. Each router's
    first call counts (a training step runs forward more than once)."""

    def __init__(self, model):
        self.routers = [m for m in model.modules() if "router" in type(m).__name__.lower()]
        self.bytes = {}

    def __enter__(self):
        self.bytes = {}

        def hook(module, args, output):
            if id(module) not in self.bytes:
                self.bytes[id(module)] = _tensor_bytes(output)
        self._handles = [m.register_forward_hook(hook) for m in self.routers]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()

    def summary(self):
        if not self.bytes:
            return None
        sizes = list(self.bytes.values())
        return {"layers": len(sizes), "bytes_per_layer": max(sizes), "bytes": sum(sizes)}


def _tensor_bytes(value):
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _cache_bytes(cache):
    """The bytes a cache holds: each storage once, whole (a DynamicSlidingWindowLayer keeps views of
    its last window - 1 tokens, which hold the whole states they were cut from)."""
    storages = {}
    for layer in getattr(cache, "layers", []):
        for v in vars(layer).values():
            if isinstance(v, torch.Tensor):
                storage = v.untyped_storage()
                storages[storage._cdata] = storage.nbytes()
    return sum(storages.values())


class LlmReport(Report):
    """footprint.llm's answer: the architecture transformers built, its parameters (total, and
    active per token for a mixture of experts), and the peak memory of each run, as
    footprint.memory reports it: `.prefill` and `.decode` (inference) or `.train`; `.memory` is
    the training step's, else the larger of prefill and decode."""

    def __init__(self, data, runs):
        self._data = data
        self.runs = runs
        self.prefill = runs.get("prefill")
        self.decode = runs.get("decode")
        self.train = runs.get("train")
        self.memory = self.train or max((r for r in (self.prefill, self.decode) if r),
                                        key=lambda r: r.allocated_peak)
        self._table = self._text()

    def _text(self):
        d = self._data
        lines = [f"{d['config']}: {d['architecture']} (transformers {d['transformers']}, the "
                 f"python path: the model's own code on meta)", ""]
        lines.append(f"Parameters: {d['parameters']:,}")
        if d["expert_parameters"]:
            lines.append(f"  routed experts: {d['expert_parameters']:,} ({d['experts_per_token']} of "
                         f"{d['experts']} per token), {_human(d['expert_weights_bytes'])} of the "
                         f"weights; active per token: {d['active_parameters']:,}")
        for phase, router in (d.get("router_outputs") or {}).items():
            lines.append(f"  router outputs (logits, top-k weights and indices) in {phase}: "
                         f"{_human(router['bytes_per_layer'])} per MoE layer x {router['layers']} "
                         f"= {_human(router['bytes'])}")
        if d.get("lora"):
            lo = d["lora"]
            lines.append(f"LoRA r={lo['rank']} alpha={lo['alpha']:g} on "
                         f"{', '.join(lo['targets'])} (peft {lo['peft']}): "
                         f"{d['trainable_parameters']:,} trainable "
                         f"({100 * d['trainable_parameters'] / d['parameters']:.3f}%)")
        rank = f", one of {d['tp']} tensor-parallel ranks" if d.get("tp", 1) > 1 else ""
        lines.append(f"Weights: {_human(d['weights_bytes'])} ({d['weights_dtype']}{rank})")
        if d.get("kv_cache_bytes"):
            lines.append(f"KV cache ({d['cache']}): {_human(d['kv_cache_bytes'])} for batch "
                         f"{d['batch']} x {d['context'] - 1} tokens, before the decode step")
        if d.get("fit"):
            f = d["fit"]
            lines.append("")
            bound = "the search's bound (max_position_embeddings, else fit_max; + 1 not tried)"
            lines.append(f"Not even {f['target']} 1 fits ({f['estimates']} estimates)." if not
                         f["largest"] else
                         f"Largest {f['target']} that fits: {f['largest']:,}, {bound} "
                         f"({f['estimates']} estimates)" if f["largest"] == f["bound"] else
                         f"Largest {f['target']} that fits: {f['largest']:,} ({f['largest']:,} + 1 "
                         f"does not; {f['estimates']} estimates)")
        for phase, title in (("prefill", f"Prefill of {d['context']} tokens"),
                             ("decode", f"Decode: one token after {d['context'] - 1}"),
                             ("train", f"Training step on {d['context']}-token sequences")):
            if self.runs.get(phase) is not None:
                lines += ["", f"{title}, batch {d['batch']}:",
                          str(self.runs[phase]).rstrip("\n")]
        return "\n".join(lines) + "\n"

    def save_html(self, path):
        """The interactive memory page of `.memory` (the training step, else the larger inference
        run), as footprint memory --html writes it; needs memory={"timeline": True}."""
        self.memory.save_html(path)

    def save_snapshot(self, path):
        """`.memory` as a snapshot pytorch.org/memory_viz opens; needs memory={"timeline": True}."""
        self.memory.save_snapshot(path)

    def _repr_html_(self):
        d = self._data
        rows = [("parameters", f"{d['parameters']:,}"),
                ("weights", f"{_human(d['weights_bytes'])} ({d['weights_dtype']})")]
        if d["expert_parameters"]:
            rows.append(("active per token", f"{d['active_parameters']:,}"))
        for phase, router in (d.get("router_outputs") or {}).items():
            rows.append((f"router outputs ({phase})", _human(router["bytes"])))
        if d.get("lora"):
            rows.append(("trainable (LoRA)", f"{d['trainable_parameters']:,}"))
        if d.get("fit"):
            rows.append((f"largest {d['fit']['target']} that fits", f"{d['fit']['largest']:,}"))
        for phase in ("prefill", "decode", "train"):
            if self.runs.get(phase) is not None:
                rows.append((f"{phase} peak", _human(self.runs[phase].allocated_peak)))
        return _html_table(f"{d['architecture']} from {d['config']}", ["", ""], rows)


def llm(config, *, context=2048, batch=1, train=False, optimizer="adamw", impl="auto",
        precision=None, weights=None, gpu=None, device="cuda", cache="dynamic",
        checkpointing=False, shard="none", gpus=1, tp=1, lora=0, lora_alpha=16,
        lora_targets=None, fit=None, fit_max=1 << 20, memory=None, revision=None):
    """The memory of a language model from its config.json (a path, its directory, a Hub name at
    `revision`, a dict or a transformers config) as the installed transformers builds it, through
    footprint.memory.

    Inference (train=False): prefill of `context` tokens at `batch`, and for a model that
    generates, one decode step after `context` - 1 tokens, as generate() runs them: logits for the
    last token only, the KV cache `cache` ("dynamic", the default DynamicCache with the sliding
    layers the config asks for, or "static": StaticCache of `context` tokens). weights: the
    parameters' dtype in inference (default: the config's dtype when 16-bit, else bfloat16).
    train=True: a training step on `context`-token sequences with the model's own loss (labels =
    the input), fp32 parameters and precision="bf16-amp" by default; checkpointing=True calls the
    model's gradient_checkpointing_enable() first, as a user would; lora=r wraps the model in
    peft's LoRA (get_peft_model; lora_alpha, lora_targets: peft's target_modules, default the
    model_type's, or "all-linear"); shard ("zero1", "zero2", "zero3" or "fsdp") over `gpus`
    data-parallel ranks gives one rank's memory. tp: the tensor-parallel degree (of `gpus`): one
    rank's slice of each layer, as Megatron splits it. fit="batch" or "context" (with a gpu): the
    largest batch (at `context`) or context (at `batch`, up to max_position_embeddings) whose runs
    all fit, each tried a full estimate; the report is made at it.
    memory: more keyword arguments for footprint.memory (alloc_conf=..., iterations=...,
    timeline=True for LlmReport.save_html and save_snapshot)."""
    import transformers
    from . import _memory as _analyzed, _source, _core
    from . import _run

    def _memory(model, input_data, train=False, shard=None, optimizer="adamw", impl="auto",
                precision="fp32", gpu=None, device="cuda", alloc_conf=None, iterations=None,
                set_to_none=True, timeline=False):
        args, kw = _run.normalize_inputs(None, input_data, None, None)
        return _analyzed(model, args, kw, train=train, optimizer=optimizer, impl=impl,
                         precision=precision, gpu=gpu, device=device, loss_fn=None,
                         alloc_conf=alloc_conf, set_to_none=set_to_none, iterations=iterations,
                         timeline=timeline, source=_source(model, None), shard=shard)

    for name, value in (("gpus", gpus), ("tp", tp), ("lora", lora), ("context", context),
                        ("batch", batch)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name}={value!r}: expected an integer")
    # The planner's checks (footprint/plan.h: plan_run, check_llm), as footprint llm makes them.
    from . import _plan
    asked = _plan(train=train, optimizer=optimizer, impl=impl, precision=precision or "fp32",
                  device=device, gpu=gpu, shard=shard, gpus=gpus, tp=tp,
                  fit="none" if fit is None else fit)
    _core.check_llm(asked, batch=batch, context=context, lora=lora,
                    checkpointing=bool(checkpointing), weights=weights is not None)
    if fit == "none":
        fit = None
    cfg, where = load_config(config, revision)
    cls = model_class(cfg, where)
    if cache not in ("dynamic", "static"):
        raise ValueError(f"cache={cache!r}: expected 'dynamic' or 'static'")
    if train:
        dtype = torch.float32
        precision = precision or "bf16-amp"
    else:
        dtype = weights if isinstance(weights, torch.dtype) else (
            getattr(torch, weights) if isinstance(weights, str) else _inference_dtype(cfg))
        # The weights' dtype names the run (footprint.memory's "bf16" casts nothing more here).
        precision = precision or {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
    if context < 1:
        raise ValueError(f"context={context!r}: expected a number of tokens, 1 or more")
    try:
        model = build(cfg, cls, dtype)
        total, experts, active, n, k = parameter_counts(model, cfg)
        if tp > 1:  # the whole model's counts above; one rank's slice runs
            model = build(tensor_parallel_config(cfg, tp, where), cls, dtype)
    except (ValueError, RuntimeError, TypeError, AttributeError, KeyError) as e:
        raise ValueError(f"{where}: {cls.__name__} cannot be built from it: {_first_line(e)}") \
            from None
    if checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise ValueError(f"{cls.__name__} does not support gradient checkpointing")
        model.gradient_checkpointing_enable()
    lora_info = None
    if lora:
        model = apply_lora(model, lora, lora_alpha, lora_targets, where)
        import peft
        targets = model.peft_config["default"].target_modules
        lora_info = {"rank": lora, "alpha": lora_alpha, "peft": peft.__version__,
                     "targets": sorted(targets) if not isinstance(targets, str) else [targets]}
    options = dict(optimizer=optimizer, impl=impl, precision=precision, gpu=gpu, device=device,
                   **(memory or {}))
    decodes = not train and _decodes(model, cfg)
    plan = shard_plan(model, shard, gpus, tp, precision) if train else None
    routers = _RouterOutputs(model)

    def runs_at(batch, context, **common):
        """Each run at batch x context: {phase: report}, the KV cache's bytes, the routers'."""
        ids = torch.zeros(batch, context, dtype=torch.long, device="meta")
        runs, kv_bytes, router = {}, None, {}
        if train:
            with _WholeSequences(), routers:
                runs["train"] = _memory(model, input_data={"input_ids": ids, "labels": ids},
                                        train=True, shard=plan, **common)
            router["train"] = routers.summary()
            return runs, kv_bytes, router
        data = {"input_ids": ids}
        if getattr(cfg, "is_encoder_decoder", False):
            data["decoder_input_ids"] = ids  # T5 and its kind: the decoder reads the same length
        if decodes:
            data.update(_prefill_kwargs(model, cfg, cache, context))
        with routers:
            runs["prefill"] = _memory(model, input_data=data, **common)
        router["prefill"] = routers.summary()
        if decodes and context > 1:
            past = _prefilled_cache(model, cfg, batch, context - 1, cache, context)
            kv_bytes = _cache_bytes(past)
            step = {"input_ids": torch.zeros(batch, 1, dtype=torch.long, device="meta"),
                    "past_key_values": past, "use_cache": True,
                    "cache_position": torch.arange(context - 1, context, device="meta"),
                    **_generate_kwargs(model)}
            with routers:
                runs["decode"] = _memory(model, input_data=step, **common)
            router["decode"] = routers.summary()
        return runs, kv_bytes, router

    fitted = None
    if fit is not None:
        probe_options = dict(options, timeline=False)
        seen = {}  # size -> (every run fits, the most any run needs), its traces let go

        def at(size):
            if size not in seen:
                args = (size, context) if fit == "batch" else (batch, size)
                probes = runs_at(*args, **probe_options)[0].values()
                seen[size] = (all(bool(r.fits()) for r in probes),
                              max(_core.fit_need(r._native) for r in probes),
                              next(iter(probes))._data.get("capacity") or 0)
            return seen[size]
        capacity = at(1)[2]
        if not capacity:
            raise ValueError("fit needs a GPU: gpu='h100' or a size such as gpu='24GiB'")
        limit = fit_max if fit == "batch" else min(
            fit_max, _first(cfg, ("max_position_embeddings", "n_positions")) or fit_max)
        largest = _core.largest_fitting(lambda size: at(size)[0], lambda size: at(size)[1],
                                        capacity, limit)
        fitted = {"target": fit, "largest": largest, "bound": limit, "estimates": len(seen) + 1}
        if largest:
            batch, context = (largest, context) if fit == "batch" else (batch, largest)
    runs, kv_bytes, router = runs_at(batch, context, **options)
    info = {
        "config": where, "path": "python", "transformers": transformers.__version__,
        "model_type": cfg.model_type, "architecture": cls.__name__,
        "parameters": total, "expert_parameters": experts, "active_parameters": active,
        "experts": n if experts else None, "experts_per_token": k if experts else None,
        "trainable_parameters": sum(p.numel() for p in _unique_parameters(model)
                                    if p.requires_grad) if train else None,
        "lora": lora_info,
        "router_outputs": {phase: r for phase, r in router.items() if r} or None,
        "weights_dtype": str(dtype).replace("torch.", ""),
        "expert_weights_bytes": experts * dtype.itemsize,
        "weights_bytes": sum(p.numel() * p.element_size() for p in _unique_parameters(model)),
        "context": context, "batch": batch, "precision": precision,
        "cache": None if train else cache, "kv_cache_bytes": kv_bytes,
        "checkpointing": bool(checkpointing), "shard": shard, "gpus": gpus, "tp": tp,
        "fit": fitted,
    }
    info.update({phase: r.to_dict() for phase, r in runs.items()})
    return LlmReport(info, runs)
