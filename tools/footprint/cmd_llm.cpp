// footprint llm: a language model from its config.json, by the C++ modules or by transformers' own
// code in Python (docs/llm.md). The planner (footprint/plan.h) makes the run for either path.
#include <fmt/format.h>

#include <algorithm>

#include "command.h"
#include "supervise.h"

namespace footprint::cli {

namespace {

constexpr const char* kLlmHelp = R"(Examples:
  footprint llm examples/llm/llama-7b.json                          parameters, weights, KV cache, inference
  footprint llm examples/llm/deepseek-v3.json --gpu h200            another architecture: transformers' code
  footprint llm config.json --weights int4 --batch 8 --context 4096 --gpu rtx4090
  footprint llm config.json --gpu h100 --fit batch                  the largest batch at this context
  footprint llm model.Q4_K_M.gguf --context 8192 --gpu rtx4090      a GGUF file, at its own quantization
  footprint llm config.json --train --gpu h100                      full fine-tuning, bf16-amp AdamW
  footprint llm config.json --train --checkpointing --lora 16 --lora-targets q_proj,v_proj --gpu a100-40gb
  footprint llm llama-2-70b.json --train --shard zero3 --gpus 64 --tp 8 --checkpointing --gpu h100

The config.json of a Hugging Face model is enough: no weights are read or downloaded. For llama,
mistral, qwen2, gpt2 and bert footprint builds the architecture as C++ modules that follow
transformers' modeling code op for op (the fast path); any other architecture transformers knows
(qwen3, gemma2, phi3, mixtral, qwen3_moe, deepseek_v3, t5, BertForMaskedLM, ...) is built by the
installed transformers itself, in Python (the python path: --path python; docs/llm.md), and so is
a mistral context longer than its sliding window. Either way it runs on the meta device: every op,
shape and allocation is the real one, and a 70B model costs no memory. The python path has --lora
(peft's get_peft_model), --fit, --html and --snapshot too; --weights int8/int4, --group-size and
--attention are the C++ path's.

Inference: a static KV cache of batch x context tokens; prefill runs a prompt of the whole context
and keeps the last position's logits (as generate() does); decode runs one token against the full
cache. int8/int4 weights are group-quantized projections (one fp16 scale and one zero point per
--group-size inputs; embeddings, norms and the head stay 16-bit).

Training: one step as docs/memory.md measures it, twice (zero_grad, forward with the causal-LM
loss, backward, optimizer step; the output's logits and transformers' DynamicCache live through
backward). --precision bf16-amp is torch.autocast over fp32 weights (16 bytes
per parameter in model states). Per GPU: --tp T builds one tensor-parallel rank (heads, MLP and
vocabulary split T ways, as Megatron-LM); --shard divides model states over the gpus/T data-parallel
ranks (zero1: optimizer state; zero2: + gradients; zero3 and fsdp: + parameters, gathered two layers
at a time). docs/llm.md explains every number and compares them with the published formulas.

Exit status: 0; 1 when the config cannot be read or the model cannot be built (one line on stderr);
2 for a usage error; 4 with --check when a phase does not fit (or --fit finds nothing that fits).)";

struct LlmArgs {
  RunRequest q;  // the planner's options, as given (--cuda-context is q.context_mib)
  std::string config, weights, lora_targets, format = "table", path = "auto", cache = "auto";
  std::string revision;  // of a Hub name
  int64_t batch = 1, context = 0, group = 128, lora = 0;
  double lora_alpha = 16;
  bool checkpointing = false;
  LlmArgs() { q.precision = "bf16-amp"; }
};

// argv for run_engine: pointers into `args`, ending in nullptr.
std::vector<char*> c_argv(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& a : args) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

LlmScenario scenario(const LlmArgs& la, const Shared& shared) {
  LlmScenario s = llm_scenario(plan_run(la.q));
  s.batch = la.batch;
  s.context = la.context;
  if (!la.weights.empty()) s.weights = precision_parse(la.weights);
  s.group_size = la.group;
  s.checkpointing = la.checkpointing;
  s.lora_rank = la.lora;
  s.lora_alpha = la.lora_alpha;
  for (size_t at = 0; !la.lora_targets.empty() && at <= la.lora_targets.size();) {
    size_t comma = la.lora_targets.find(',', at);
    if (comma == std::string::npos) comma = la.lora_targets.size();
    if (comma > at) s.lora_targets.push_back(la.lora_targets.substr(at, comma - at));
    at = comma + 1;
  }
  s.memory.timeline = shared.pictures.any();
  s.limits = shared.engine.limits();
  return s;
}

int report(const LlmArgs& la, const Shared& shared, const LlmReport& r, const Output& output) {
  // The pictures before the report: a picture that cannot be written is the one error.
  if (shared.pictures.any()) {
    const MemoryReport* pictured = r.train ? &*r.train : nullptr;
    for (const auto* phase : {&r.prefill, &r.decode})
      if (*phase && (!pictured || (*phase)->peak.bytes > pictured->peak.bytes)) pictured = &**phase;
    if (!pictured)
      throw Error(
          fmt::format("{}: --snapshot/--html: this model has no run to picture", la.config));
    write_pictures(shared.pictures, *pictured);
  }
  fmt::print(output.out, "{}", print_llm(r, *format_parse(la.format)));
  std::vector<std::string> lines;
  bool does_not_fit = r.fit_target != FitTarget::kNone && r.fit.value_or(0) == 0;
  for (const auto* run : {&r.prefill, &r.decode, &r.train})
    if (*run) {
      lines.insert(lines.end(), (*run)->gaps.begin(), (*run)->gaps.end());
      does_not_fit = does_not_fit || !fits(**run);
    }
  return shared.engine.status(output.gaps(lines), does_not_fit);
}

}  // namespace

Command add_llm(CLI::App& app, Shared& shared) {
  auto la = std::make_shared<LlmArgs>();
  CLI::App* llm = app.add_subcommand(
      "llm",
      "A language model from its config.json: parameters, weights, KV cache, and the memory "
      "of inference or training per GPU.");
  llm->add_option("CONFIG", la->config,
                  "A transformers config.json (any model_type; llama, mistral, qwen2, gpt2 and "
                  "bert by the C++ modules), a GGUF file (llama, qwen2), or a Hugging Face Hub "
                  "name (meta-llama/Llama-3.1-8B: its config.json from huggingface_hub's cache, "
                  "downloaded there first unless HF_HUB_OFFLINE is set)")
      ->required();
  llm->add_option("--revision", la->revision, "A Hub name's branch, tag or commit (default: main)");
  llm->add_option("--batch", la->batch, "Sequences per batch")
      ->default_val(1)
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  llm->add_option("--context", la->context,
                  "Tokens: the KV cache's length (inference) or the sequence length (training); "
                  "default: max_position_embeddings, at most 4096")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  CLI::Option* train = llm->add_flag("--train", la->q.train,
                                     "A training step (forward, loss, backward, optimizer step)");
  llm->add_option("--weights", la->weights,
                  "Inference weights: fp32, fp16, bf16, int8, int4 (default: the config's "
                  "torch_dtype when 16-bit, else bf16)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "int8", "int4"}))
      ->excludes(train);
  llm->add_option("--group-size", la->group, "int8/int4: inputs per quantization group")
      ->default_val(128)
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
      ->excludes(train);
  add_choice(llm, "--precision", la->q.precision, Vocabulary::kPrecision, "Training")->needs(train);
  add_choice(llm, "--optimizer", la->q.optimizer, Vocabulary::kOptimizer,
             "torch.optim's, at its defaults")
      ->needs(train);
  add_choice(llm, "--impl", la->q.impl, Vocabulary::kImplementation,
             "The optimizer's implementation")
      ->needs(train);
  llm->add_flag("--checkpointing", la->checkpointing,
                "Gradient checkpointing: each layer recomputed in backward")
      ->needs(train);
  llm->add_option("--lora", la->lora, "LoRA rank (0: full fine-tuning); the base model is frozen")
      ->default_val(0)
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20))
      ->needs(train);
  llm->add_option("--lora-alpha", la->lora_alpha, "LoRA's alpha (scaling = alpha / rank)")
      ->default_val(16)
      ->check(finite_in(-1e9, 1e9))
      ->needs(train);
  llm->add_option("--lora-targets", la->lora_targets,
                  "Projections with adapters, comma-separated (q_proj,v_proj), or all-linear; "
                  "default: PEFT's for the family")
      ->needs(train);
  add_choice(llm, "--shard", la->q.sharding, Vocabulary::kSharding,
             "Sharded data parallelism over --gpus / --tp ranks")
      ->needs(train);
  llm->add_option("--gpus", la->q.gpus, "GPUs in all (data parallel x tensor parallel)")
      ->default_val(1)
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  llm->add_option("--tp", la->q.tp, "Tensor-parallel degree")
      ->default_val(1)
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  add_choice(llm, "--attention", la->q.attention, Vocabulary::kAttention, "");
  CLI::Option* gpu = llm->add_option("--gpu", la->q.gpu,
                                     "h100, h200, a100-80gb, a100-40gb, l4, rtx4090, "
                                     "rtx3090, t4, v100-16gb, v100-32gb, or a size (24GiB)")
                         ->check(check_gpu);
  add_choice(llm, "--device", la->q.device, Vocabulary::kTarget, "");
  llm->add_option("--cuda-context", la->q.context_mib,
                  "MiB the CUDA context and libraries take (default: the GPU profile's)")
      ->check(finite_in(0.0, 1e9));
  llm->add_option("--alloc-conf", la->q.alloc_conf, "PYTORCH_CUDA_ALLOC_CONF settings")
      ->check(check_alloc_conf);
  llm->add_option("--path", la->path,
                  "auto: the C++ modules for their families, else transformers' own code run "
                  "in Python (a Python with torch, transformers and footprint's package); "
                  "cpp; python (docs/llm.md)")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "cpp", "python"}));
  llm->add_option("--cache", la->cache,
                  "Decode's KV cache: auto; dynamic (generate()'s DynamicCache, the python "
                  "path's default); static (preallocated, as the C++ path's always is)")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "dynamic", "static"}));
  add_choice(llm, "--fit", la->q.fit, Vocabulary::kFitTarget, "With --gpu")->needs(gpu);
  llm->add_option("--format", la->format, "Output format")
      ->default_val("table")
      ->check(CLI::IsMember({"table", "json", "csv", "md"}));
  add_engine_options(llm, shared.engine, true);
  llm->get_option("--check")->needs(gpu);
  add_picture_options(llm, shared.pictures,
                      "the training step (inference: the phase with the larger peak, prefill or "
                      "decode)");
  llm->footer(std::string(kLlmHelp) + "\n\n" + kSandboxHelp);

  Command c;
  c.app = llm;
  c.file = [la] { return la->config; };
  c.format = [la] { return la->format; };
  c.run = [la, &shared](char** argv, const Engine* engine, const Output& output) {
    const EngineArgs& ea = shared.engine;
    check_llm(scenario(*la, shared));  // the options' mistakes, before any engine starts
    // The engine's arguments: these, with a Hub name as the path of its cached config.json.
    std::vector<std::string> args;
    for (char** a = argv; *a; ++a) args.push_back(*a);
    if (is_hub_name(la->config)) {
      std::optional<HubFiles> files = hub_cached(la->config, la->revision);
      if (!files && !hub_offline()) {
        std::string why = hub_download(la->config, la->revision);
        if (!why.empty()) throw Error(la->config + ": " + why);
        files = hub_cached(la->config, la->revision);
      }
      if (!files)
        throw Error(
            fmt::format("{}: no such file, and not in huggingface_hub's cache ({}{}){}", la->config,
                        hub_cache_dir(), la->revision.empty() ? "" : ", revision " + la->revision,
                        hub_offline() ? "; HF_HUB_OFFLINE is set, so it was not downloaded" : ""));
      std::replace(args.begin(), args.end(), la->config, files->config);
      la->config = files->config;
    }
    if (!ea.guess.empty()) return refuse_guess(la->config);
    // A config.json the C++ modules do not build (another family, or another class of theirs:
    // BertForMaskedLM), or --path python: transformers' own code, in Python, told so by --path.
    if (!engine &&
        (la->path == "python" || (la->path == "auto" && !ends_with(la->config, ".gguf") &&
                                  python_only(la->config, la->context)))) {
      if (la->path != "python") args.insert(args.end(), {"--path", "python"});
      return run_engine(c_argv(args).data(), ea, la->config, output.json, output.out,
                        /*python=*/true);
    }
    if (!engine) return run_engine(c_argv(args).data(), ea, la->config, output.json, output.out);
    if (la->cache == "dynamic") {
      fmt::print(stderr,
                 "footprint llm: --cache dynamic: the C++ path's KV cache is preallocated (as a "
                 "StaticCache); --path python runs transformers' DynamicCache\n");
      return kExitUsage;
    }
    return report(*la, shared, engine->llm(la->config, scenario(*la, shared)), output);
  };
  return c;
}

}  // namespace footprint::cli
