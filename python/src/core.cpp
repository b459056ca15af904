// footprint._core: the C++ engine, core and planner for the Python package (python/footprint/).
// It binds what the package needs and no more: a CaptureSession that the package drives while
// the model's own Python code runs on meta, the Model the package reads from the nn.Module, and
// the analyses and printers the command line uses. Reports cross as the CLI's JSON and tables,
// which the Python side turns into objects; nothing is computed twice.
#include <nanobind/nanobind.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>
#include <torch/version.h>

#include <memory>

#include "footprint/engine.h"
#include "footprint/error.h"
#include "footprint/footprint.h"
#include "footprint/memory_viz.h"
#include "footprint/plan.h"
#include "footprint/report.h"
#include "footprint/version.h"
#include "formats/readers.h"

namespace nb = nanobind;
using namespace footprint;

namespace {

Phase phase_from(const std::string& name) {
  for (Phase p : {Phase::kForward, Phase::kLoss, Phase::kBackward, Phase::kStep, Phase::kZeroGrad,
                  Phase::kSetup})
    if (phase_name(p) == name) return p;
  throw Error("unknown phase " + name);
}

DType dtype_from(const std::string& name) {
  auto d = dtype_parse(name);
  if (!d) throw Error("unknown dtype " + name);
  return *d;
}

std::vector<InputSpec> inputs_from(
    const std::vector<std::pair<std::vector<int64_t>, std::string>>& inputs) {
  std::vector<InputSpec> out;
  for (const auto& [shape, dtype] : inputs) {
    InputSpec spec;
    spec.shape = shape;
    if (!dtype.empty()) spec.dtype = dtype_from(dtype);
    out.push_back(spec);
  }
  return out;
}

// A tensor as the package reads it from named_parameters() and named_buffers():
// (name, shape, dtype, is_parameter, trainable, storage, storage_offset, strides).
using TensorTuple = std::tuple<std::string, std::vector<int64_t>, std::string, bool, bool,
                               std::string, int64_t, std::vector<int64_t>>;

Model make_model(const std::string& source, const std::vector<TensorTuple>& tensors,
                 const std::map<std::string, std::string>& module_types) {
  Model m;
  m.source = source;
  m.format = "nn.Module";
  m.module_types = module_types;
  for (const auto& [name, shape, dtype, parameter, trainable, storage, offset, strides] : tensors) {
    TensorInfo t;
    t.name = name;
    t.shape = shape;
    t.dtype = dtype_from(dtype);
    t.role = parameter ? TensorRole::kParameter : TensorRole::kBuffer;
    t.trainable = parameter && trainable;
    t.storage = storage;
    t.storage_offset = offset;
    t.strides = strides;
    m.tensors.push_back(std::move(t));
  }
  return m;
}

// The front end's wording of library messages: Python's (gpu=), or the command line's (--gpu)
// when footprint.cli runs the package as the command's engine.
FrontEnd g_front_end = FrontEnd::kPython;

std::optional<std::string> dtype_text(const std::optional<DType>& d) {
  if (!d) return std::nullopt;
  return std::string(dtype_name(*d));
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "footprint's C++ engine (the package's footprint.* functions are the API)";
  // Reports alive when the interpreter exits (a notebook's, a script's globals) hold traces; their
  // memory goes with the process, and nanobind's count of them is noise for a user.
  nb::set_leak_warnings(false);
  m.attr("version") = FOOTPRINT_VERSION;
  m.attr("torch_version") = TORCH_VERSION;  // the LibTorch this extension was built against
  m.def("version_text", &version_text);
  m.def("rule_sources", [] {
    std::vector<std::tuple<std::string, std::string, std::string, std::string>> out;
    for (const auto& s : rule_sources())
      out.emplace_back(std::string(s.rules), std::string(s.what), std::string(s.torch),
                       std::string(s.measured));
    return out;
  });
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(PyExc_ValueError, word_options(e.what(), g_front_end).c_str());
    }
  });
  m.def("word_for_command_line", [] { g_front_end = FrontEnd::kCommandLine; });

  // The planner (footprint/plan.h): the vocabularies and the run every front end builds.
  m.def("vocabularies", [] {
    std::vector<std::string> names;
    for (Vocabulary v : kVocabularies) names.emplace_back(vocabulary_option(v));
    return names;
  });
  m.def("choices", [](const std::string& option) {
    for (Vocabulary v : kVocabularies)
      if (vocabulary_option(v) == option) {
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& c : choices(v)) out.emplace_back(c.name, c.help);
        return out;
      }
    throw Error("no vocabulary for option " + option);
  });
  nb::class_<RunPlan>(m, "RunPlan")
      .def_ro("train", &RunPlan::train)
      .def_prop_ro("target",
                   [](const RunPlan& p) {
                     return std::string(choices(Vocabulary::kTarget).at(size_t(p.target)).name);
                   })
      .def_prop_ro("sm", [](const RunPlan& p) { return p.cuda.sm; })
      .def_prop_ro("multiprocessors", [](const RunPlan& p) { return p.cuda.multiprocessors; })
      .def_prop_ro(
          "precision",
          [](const RunPlan& p) { return std::string(precision_mode_name(p.precision.mode)); })
      .def_prop_ro("parameters_dtype",
                   [](const RunPlan& p) { return dtype_text(p.precision.parameters); })
      .def_prop_ro("autocast_dtype",
                   [](const RunPlan& p) { return dtype_text(p.precision.autocast); })
      .def_prop_ro("optimizer",
                   [](const RunPlan& p) -> std::optional<std::map<std::string, double>> {
                     // torch.optim's keyword arguments, and the class by kind (0 SGD, 1 Adam,
                     // 2 AdamW, 3 Adagrad, 4 RMSprop).
                     if (!p.training) return std::nullopt;
                     const OptimizerSpec& o = p.training->optimizer;
                     return std::map<std::string, double>{
                         {"kind", double(o.kind)}, {"momentum", o.momentum},
                         {"nesterov", o.nesterov}, {"weight_decay", o.weight_decay},
                         {"amsgrad", o.amsgrad},   {"centered", o.centered}};
                   })
      .def_prop_ro("impl",
                   [](const RunPlan& p) -> std::optional<std::string> {
                     if (!p.training) return std::nullopt;
                     return std::string(impl_name(p.training->optimizer.impl));
                   })
      .def_prop_ro("iterations",
                   [](const RunPlan& p) { return p.training ? p.training->iterations : 1; })
      .def_prop_ro("loss",
                   [](const RunPlan& p) {
                     return std::string(choices(Vocabulary::kLoss).at(size_t(p.loss)).name);
                   })
      .def_ro("set_to_none", &RunPlan::set_to_none)
      .def_prop_ro("shard",
                   [](const RunPlan& p) {
                     return std::string(choices(Vocabulary::kSharding).at(size_t(p.sharding)).name);
                   })
      .def_ro("gpus", &RunPlan::gpus)
      .def_ro("tp", &RunPlan::tp)
      .def_prop_ro("fit", [](const RunPlan& p) {
        return std::string(choices(Vocabulary::kFitTarget).at(size_t(p.fit)).name);
      });
  // What a front end was asked, by the planner's names; footprint._plan fills it in.
  nb::class_<RunRequest>(m, "RunRequest")
      .def(nb::init<>())
      .def_rw("train", &RunRequest::train)
      .def_rw("optimizer", &RunRequest::optimizer)
      .def_rw("impl", &RunRequest::impl)
      .def_rw("precision", &RunRequest::precision)
      .def_rw("loss", &RunRequest::loss)
      .def_rw("zero_grad", &RunRequest::zero_grad)
      .def_rw("device", &RunRequest::device)
      .def_rw("gpu", &RunRequest::gpu)
      .def_rw("context_mib", &RunRequest::context_mib)
      .def_rw("alloc_conf", &RunRequest::alloc_conf)
      .def_rw("shard", &RunRequest::sharding)
      .def_rw("gpus", &RunRequest::gpus)
      .def_rw("tp", &RunRequest::tp)
      .def_rw("attention", &RunRequest::attention)
      .def_rw("fit", &RunRequest::fit);
  m.def("plan_run", &plan_run, nb::arg("request"));
  m.def("default_impl", [](const std::string& target) {
    return std::string(impl_name(default_impl(target == "cpu" ? Target::kCpu : Target::kCuda)));
  });
  m.def("resolve_loss", [](const std::string& loss, int dims, bool floating, bool labels) {
    LossKind k = LossKind(choose(Vocabulary::kLoss, loss));
    return std::string(
        choices(Vocabulary::kLoss).at(size_t(resolve_loss(k, dims, floating, labels))).name);
  });
  m.def(
      "check_llm",
      [](const RunPlan& plan, int64_t batch, int64_t context, int64_t lora, bool checkpointing,
         bool weights) {
        LlmScenario s = llm_scenario(plan);
        s.batch = batch;
        s.context = context;
        s.lora_rank = lora;
        s.checkpointing = checkpointing;
        if (weights) s.weights = Precision::kBf16;  // chosen; which one does not matter here
        check_llm(s);
      },
      nb::arg("plan"), nb::arg("batch"), nb::arg("context"), nb::arg("lora"),
      nb::arg("checkpointing"), nb::arg("weights"));
  m.def(
      "plan_sharding",
      [](const std::string& shard, int64_t gpus, int64_t tp, bool amp, int64_t numel, int64_t bytes,
         int64_t trainable_bytes) {
        ShardPlan p = plan_sharding(Sharding(choose(Vocabulary::kSharding, shard)), gpus, tp, amp,
                                    LayerTensors{numel, bytes, trainable_bytes});
        return std::make_tuple(std::vector<int64_t>(p.divisor.begin(), p.divisor.end()), p.gathered,
                               p.drop_weight_casts);
      },
      nb::arg("shard"), nb::arg("gpus"), nb::arg("tp"), nb::arg("amp"), nb::arg("numel"),
      nb::arg("bytes"), nb::arg("trainable_bytes"));

  nb::class_<Model>(m, "Model");
  m.def("make_model", &make_model, nb::arg("source"), nb::arg("tensors"), nb::arg("module_types"));

  nb::class_<Trace>(m, "Trace")
      .def_prop_ro("ops", [](const Trace& t) { return t.ops.size(); })
      .def_prop_ro("stopped", [](const Trace& t) { return t.stopped; })
      .def("events",
           [](const Trace& t) {
             // Every allocation and free: (bytes, phase, iteration, top-level op, op), for tests
             // and for looking into a difference.
             std::vector<std::tuple<int64_t, std::string, int, std::string, std::string>> out;
             for (const auto& e : t.memory) {
               std::string top, op;
               if (e.op >= 0) {
                 int i = e.op;
                 op = t.ops[i].name;
                 while (t.ops[i].parent >= 0) i = t.ops[i].parent;
                 top = t.ops[i].name;
               }
               out.emplace_back(e.bytes, std::string(phase_name(e.phase)), e.iteration, top, op);
             }
             return out;
           })
      .def("op_list",
           [](const Trace& t) {
             // (name, parent, phase, module call, inputs, outputs), inputs and outputs as text.
             std::vector<std::tuple<std::string, int, std::string, int, std::string, std::string>>
                 out;
             auto text = [](const std::vector<OpValue>& vs) {
               std::string s;
               for (const auto& v : vs) {
                 if (!s.empty()) s += ", ";
                 if (v.is_tensor())
                   s += shape_text(v.tensor().shape) + (v.tensor().channels_last ? "cl" : "") +
                        (v.tensor().contiguous ? "" : "nc");
                 else if (!v.ints.empty())
                   s += shape_text(v.ints);
                 else
                   s += "_";
               }
               return s;
             };
             for (const auto& op : t.ops)
               out.emplace_back(op.name, op.parent, std::string(phase_name(op.phase)), op.call,
                                text(op.inputs), text(op.outputs));
             return out;
           })
      .def(
          "top_level_ops",
          [](const Trace& t, const std::string& phase, int iteration) {
            // The names of the ops no other op called, in order, in one phase (and iteration, or
            // every one with -1): what a real run's profiler sees at the top.
            std::vector<std::string> names;
            Phase p = phase_from(phase);
            for (const auto& op : t.ops)
              if (op.parent < 0 && op.phase == p && (iteration < 0 || op.iteration == iteration))
                names.push_back(op.name);
            return names;
          },
          nb::arg("phase"), nb::arg("iteration") = -1);

  // A TorchScript file captured as `footprint memory FILE` captures it, for comparing the two
  // paths on one model.
  m.def(
      "capture_file",
      [](const std::string& path,
         const std::vector<std::pair<std::vector<int64_t>, std::string>>& inputs, bool train,
         const std::string& target, const std::string& optimizer, const std::string& impl) {
        torch::jit::Module module = torch::jit::load(path);
        CaptureOptions o;
        o.inputs = inputs_from(inputs);
        o.train = train;
        RunRequest q;
        q.train = !optimizer.empty();
        if (q.train) q.optimizer = optimizer;
        q.impl = impl;
        q.device = target;
        RunPlan plan = plan_run(q);
        o.target = plan.target;
        if (plan.training) {
          o.optimizer = plan.training->optimizer;
          o.iterations = plan.training->iterations;
          o.counters_on_device = plan.training->counters_on_device;
        }
        return capture(module, o);
      },
      nb::arg("path"), nb::arg("inputs"), nb::arg("train"), nb::arg("target"),
      nb::arg("optimizer") = "", nb::arg("impl") = "auto",
      nb::call_guard<nb::gil_scoped_release>());  // backward runs in LibTorch's autograd engine

  // The C++ path of `footprint llm` (src/llm): the traces of its final runs, by run ("prefill",
  // "decode", "train"), for holding its op sequence to transformers' code (tests/python).
  m.def(
      "llm_cpp_traces",
      [](const std::string& path, int64_t batch, int64_t context, bool train,
         const std::string& weights, const std::optional<std::string>& gpu, int64_t lora,
         const std::vector<std::string>& lora_targets, const std::string& attention) {
        LlmScenario s;
        s.batch = batch;
        s.context = context;
        s.train = train;
        s.lora_rank = lora;
        s.lora_targets = lora_targets;
        s.attention = AttentionImpl(choose(Vocabulary::kAttention, attention));
        if (!weights.empty()) {
          s.weights = precision_parse(weights);
          if (!s.weights) throw Error("weights: not a precision: " + weights);
        }
        if (gpu) s.memory.gpu = device_parse(*gpu);
        std::map<std::string, Trace> traces;
        s.on_trace = [&](const std::string& run, const Trace& t) { traces[run] = t; };
        llm_file(path, s);
        return traces;
      },
      nb::arg("path"), nb::arg("batch"), nb::arg("context"), nb::arg("train"),
      nb::arg("weights") = "", nb::arg("gpu").none() = nb::none(), nb::arg("lora") = 0,
      nb::arg("lora_targets") = std::vector<std::string>{}, nb::arg("attention") = "auto",
      nb::call_guard<nb::gil_scoped_release>());

  nb::class_<CaptureSession>(m, "Session")
      .def(
          "__init__",
          [](CaptureSession* self, bool train, const std::string& target, int sm,
             const std::string& autocast, double seconds, int64_t ops, int64_t cpu_bytes,
             const std::string& root_type, int multiprocessors, int64_t memory_bytes) {
            CaptureOptions o;
            o.train = train;
            o.target = target == "cpu" ? Target::kCpu : Target::kCuda;
            o.cuda_sm = sm;
            o.cuda_multiprocessors = multiprocessors;
            if (!autocast.empty()) o.autocast = dtype_from(autocast);
            o.limits.seconds = seconds;
            o.limits.ops = ops;
            o.limits.cpu_bytes = cpu_bytes;
            o.limits.memory_bytes = memory_bytes;
            new (self) CaptureSession(o, root_type);
          },
          nb::arg("train"), nb::arg("target"), nb::arg("sm"), nb::arg("autocast"),
          nb::arg("seconds"), nb::arg("ops"), nb::arg("cpu_bytes"), nb::arg("root_type"),
          nb::arg("multiprocessors") = 132, nb::arg("memory_bytes") = 0)
      .def("phase", [](CaptureSession& s, const std::string& name,
                       int iteration) { s.phase(phase_from(name), iteration); })
      .def("enter_module", &CaptureSession::enter_module)
      .def("exit_module", &CaptureSession::exit_module)
      .def("autocast", &CaptureSession::autocast)
      .def("pause_autocast", &CaptureSession::pause_autocast)
      .def("finish", &CaptureSession::finish, nb::arg("error") = "");

  m.def(
      "params",
      [](const Model& model, const std::string& precisions, int depth, bool tensors,
         const std::string& format) {
        ParamOptions o;
        if (!precisions.empty()) o.precisions = precision_parse_list(precisions);
        o.depth = depth;
        PrintOptions p;
        p.tensors = tensors;
        p.format = *format_parse(format);
        return print_params(params(model, o), p);
      },
      nb::arg("model"), nb::arg("precisions"), nb::arg("depth"), nb::arg("tensors"),
      nb::arg("format"));

  nb::class_<Summary>(m, "Summary")
      .def(
          "print",
          [](const Summary& s, const std::string& format, int depth, bool by_op, bool torchstat) {
            SummaryPrintOptions o;
            o.format = *format_parse(format);
            o.depth = depth;
            o.by_op = by_op;
            o.columns = torchstat ? SummaryColumns::kTorchstat : SummaryColumns::kDefault;
            return print_summary(s, o);
          },
          nb::arg("format"), nb::arg("depth"), nb::arg("by_op") = false,
          nb::arg("torchstat") = false)
      .def("thop", &print_thop_lines);
  m.def(
      "summarize",
      [](const Model& model, const Trace& trace,
         const std::vector<std::pair<std::vector<int64_t>, std::string>>& inputs, bool train,
         const std::string& source) {
        SummaryOptions o;
        o.inputs = inputs_from(inputs);
        o.train = train;
        Summary s = summarize(model, trace, o);
        s.source = source;
        return s;
      },
      nb::arg("model"), nb::arg("trace"), nb::arg("inputs"), nb::arg("train"), nb::arg("source"));

  nb::class_<MemoryReport>(m, "MemoryReport")
      .def(
          "print",
          [](const MemoryReport& r, const std::string& format, int modules) {
            MemoryPrintOptions o;
            o.format = *format_parse(format);
            o.modules = modules;
            return print_memory(r, o);
          },
          nb::arg("format"), nb::arg("modules") = 8)
      .def("html", &memory_html)
      .def("snapshot", [](const MemoryReport& r) {
        std::string s = memory_snapshot(r);
        return nb::bytes(s.data(), s.size());
      });
  m.def(
      "analyze",
      [](const Model& model, const Trace& trace, const std::string& target,
         const std::optional<std::string>& gpu, const std::string& alloc_conf, bool timeline,
         const std::vector<std::pair<std::vector<int64_t>, std::string>>& inputs,
         const std::string& precision, const std::string& optimizer, bool set_to_none,
         const std::string& source, const std::vector<int64_t>& shard_divisor,
         int64_t shard_gathered, bool drop_weight_casts, double context_mib) {
        // The sharding pass's plan (ZeRO/FSDP as one rank sees it; footprint.llm makes it).
        ShardPlan plan;
        for (size_t i = 0; i < shard_divisor.size() && i < plan.divisor.size(); ++i)
          plan.divisor[i] = std::max<int64_t>(1, shard_divisor[i]);
        plan.gathered = shard_gathered;
        plan.drop_weight_casts = drop_weight_casts;
        MemoryOptions memory = plan_memory(Target(choose(Vocabulary::kTarget, target)),
                                           gpu.value_or(""), context_mib, alloc_conf);
        memory.timeline = timeline;
        MemoryReport r = analyze_memory(model, trace, memory, plan);
        r.inputs = inputs_from(inputs);
        r.precision = precision;
        r.optimizer = optimizer;
        r.set_to_none = set_to_none;
        r.source = source;
        return r;
      },
      nb::arg("model"), nb::arg("trace"), nb::arg("target"), nb::arg("gpu").none(),
      nb::arg("alloc_conf"), nb::arg("timeline"), nb::arg("inputs"), nb::arg("precision"),
      nb::arg("optimizer"), nb::arg("set_to_none"), nb::arg("source"),
      nb::arg("shard_divisor") = std::vector<int64_t>{}, nb::arg("shard_gathered") = 0,
      nb::arg("drop_weight_casts") = false, nb::arg("context") = -1.0);
  m.def("fit_need", &fit_need);
  m.def("largest_fitting", &largest_fitting, nb::arg("fits"), nb::arg("need"), nb::arg("capacity"),
        nb::arg("max"));

  m.def("devices", [] {
    std::vector<std::tuple<std::string, std::string, int64_t, int64_t, int>> out;
    for (const auto& d : device_profiles())
      out.emplace_back(d.key, d.name, d.total, d.context, d.sm);
    return out;
  });
  m.def("device", [](const std::string& text) {
    DeviceProfile d = device_parse(text);
    return std::make_tuple(d.key, d.name, d.total, d.context, d.sm, d.multiprocessors);
  });
  m.def("size_parse", [](const std::string& text) { return size_parse(text); });
  // A torch.export program's graph as footprint's own reader writes it out (formats/readers.h,
  // pt2_document): JSON footprint made from checked fields, for _pt2.py's runner.
  m.def(
      "read_pt2",
      [](const std::string& path, double seconds) {
        return footprint::detail::pt2_document_file(path, seconds);
      },
      nb::arg("path"), nb::arg("seconds") = 0.0);
  m.def("read_config_text", &read_config_text, nb::arg("path"));
  // `footprint fit`'s report in any of the command's formats, from the python path's reports.
  m.def(
      "print_fit",
      [](int64_t batch, const MemoryReport& fits, const MemoryReport& next, int captures,
         const std::string& format) {
        FitResult f{batch, fits, next, captures};
        return print_fit(f, *format_parse(format));
      },
      nb::arg("batch"), nb::arg("fits"), nb::arg("next"), nb::arg("captures"), nb::arg("format"));
  // Text from a model or a file, as one line a terminal shows safely (footprint/error.h).
  m.def("escape_text", [](const std::string& text) { return escape_text(text); });
}
