// Pictures of a memory report's timeline (footprint/memory_viz.h): the memory_viz snapshot and the
// HTML report. Both read only MemoryReport and its MemoryTimeline.
#include "footprint/memory_viz.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/pickle_writer.h"
#include "footprint/error.h"

namespace footprint {

namespace detail {
extern const char* const kMemoryReportHtml;  // memory_report.html, embedded by CMake
}

namespace {

const MemoryTimeline& timeline_of(const MemoryReport& r, const char* what) {
  if (!r.timeline)
    throw Error(fmt::format("{}: the report has no timeline (set MemoryOptions::timeline)", what));
  return *r.timeline;
}

std::string module_label(const MemoryTimeline& t, int module) {
  if (module < 0 || size_t(module) >= t.modules.size()) return "model";
  const auto& m = t.modules[module];
  std::string path = m.path.empty() ? "model" : m.path;
  return m.type.empty() ? path : path + " (" + m.type + ")";
}

std::string op_name(const MemoryTimeline& t, int op) {
  return op >= 0 && size_t(op) < t.ops.size() ? t.ops[op] : "";
}

}  // namespace

std::vector<SegmentAt> segments_at(const MemoryTimeline& t, size_t step) {
  std::map<int64_t, SegmentAt> segments;  // by address
  std::map<int64_t, SegmentAt::Block> blocks;
  // The segment that holds [address, address + size), or end().
  auto holding = [&](int64_t address) {
    auto it = segments.upper_bound(address);
    if (it == segments.begin()) return segments.end();
    --it;
    return address < it->first + it->second.size ? it : segments.end();
  };
  for (const auto& [a, s] : t.actions) {
    if (size_t(s) > step) break;
    switch (a.kind) {
      case AllocatorAction::kSegmentAlloc:
        segments[a.address] = {a.address, a.size, a.small, false, {}};
        break;
      case AllocatorAction::kSegmentFree:
        segments.erase(a.address);
        break;
      case AllocatorAction::kSegmentMap: {
        // Pages mapped at the end of an expandable segment extend it.
        auto it = a.address > 0 ? holding(a.address - 1) : segments.end();
        if (it != segments.end() && it->second.expandable &&
            it->first + it->second.size == a.address)
          it->second.size += a.size;
        else
          segments[a.address] = {a.address, a.size, a.small, true, {}};
        break;
      }
      case AllocatorAction::kSegmentUnmap: {
        auto it = holding(a.address);
        if (it == segments.end()) break;
        it->second.size -= a.size;  // pages leave from the end
        if (it->second.size <= 0) segments.erase(it);
        break;
      }
      case AllocatorAction::kAlloc:
        blocks[a.address] = {a.address, a.size, a.requested, s};
        break;
      case AllocatorAction::kFree:
        blocks.erase(a.address);
        break;
      case AllocatorAction::kOom:
        break;
    }
  }
  std::vector<SegmentAt> out;
  auto b = blocks.begin();
  for (auto& [address, seg] : segments) {
    int64_t end = address + seg.size, at = address;
    while (b != blocks.end() && b->first < address) ++b;
    for (; b != blocks.end() && b->first < end; ++b) {
      if (b->first > at) seg.blocks.push_back({at, b->first - at, 0, -1});
      seg.blocks.push_back(b->second);
      at = b->first + b->second.size;
    }
    if (at < end) seg.blocks.push_back({at, end - at, 0, -1});
    out.push_back(std::move(seg));
  }
  return out;
}

// ------------------------------------------------------------------------------- the snapshot

namespace {

// Writes the snapshot's frames: the ops running when it allocated, innermost first, each at its
// module (file "layer1.0.conv1 (Conv2d)", name "aten::convolution"), then the phase as the name of
// a frame whose file is the iteration ("iteration 2", line 2, "backward"). Each distinct list is
// written once and shared through the memo.
class FrameWriter {
 public:
  FrameWriter(const MemoryTimeline& t, detail::PickleWriter& w) : t_(t), w_(w) {}
  void write(int step) {
    const auto& s = t_.steps[step];
    auto key = std::make_tuple(s.op, s.stack, s.module, int(s.phase), s.iteration);
    auto it = memo_.find(key);
    if (it != memo_.end()) return w_.get(it->second);
    std::string where = module_label(t_, s.module);
    w_.begin_list();
    if (s.stack >= 0)
      for (int op : t_.stacks[s.stack]) frame(where, 0, op_name(t_, op));
    else if (s.op >= 0)
      frame(where, 0, op_name(t_, s.op));
    if (s.phase == Phase::kSetup)
      frame("before the run", 0, "setup");
    else
      frame(fmt::format("iteration {}", s.iteration + 1), s.iteration + 1,
            std::string(phase_name(s.phase)));
    w_.end_list();
    memo_[key] = w_.put();
  }

 private:
  void frame(const std::string& filename, int line, const std::string& name) {
    w_.begin_dict();
    w_.string("filename");
    w_.string(filename);
    w_.string("line");
    w_.integer(line);
    w_.string("name");
    w_.string(name);
    w_.end_dict();
  }
  const MemoryTimeline& t_;
  detail::PickleWriter& w_;
  std::map<std::tuple<int, int, int, int, int>, uint32_t> memo_;
};

void key_int(detail::PickleWriter& w, const char* key, int64_t v) {
  w.string(key);
  w.integer(v);
}
void key_str(detail::PickleWriter& w, const char* key, std::string_view v) {
  w.string(key);
  w.string(v);
}

}  // namespace

std::string memory_snapshot(const MemoryReport& r) {
  const MemoryTimeline& t = timeline_of(r, "`snapshot`");
  detail::PickleWriter w;
  FrameWriter frames(t, w);
  w.begin_dict();

  w.string("segments");
  w.begin_list();
  size_t last = t.steps.empty() ? 0 : t.steps.size() - 1;
  for (const SegmentAt& seg : t.steps.empty() ? std::vector<SegmentAt>{} : segments_at(t, last)) {
    int64_t allocated = 0, requested = 0;
    for (const auto& b : seg.blocks)
      if (b.step >= 0) allocated += b.size, requested += b.requested;
    w.begin_dict();
    key_int(w, "device", 0);
    key_int(w, "address", seg.address);
    key_int(w, "total_size", seg.size);
    key_int(w, "allocated_size", allocated);
    key_int(w, "active_size", allocated);
    key_int(w, "requested_size", requested);
    key_int(w, "stream", 0);
    key_str(w, "segment_type", seg.small ? "small" : "large");
    w.string("is_expandable");
    w.boolean(seg.expandable);
    w.string("frames");
    w.begin_list();
    w.end_list();
    w.string("blocks");
    w.begin_list();
    for (const auto& b : seg.blocks) {
      w.begin_dict();
      key_int(w, "address", b.address);
      key_int(w, "size", b.size);
      key_int(w, "requested_size", b.requested);
      key_str(w, "state", b.step >= 0 ? "active_allocated" : "inactive");
      w.string("frames");
      if (b.step >= 0) {
        frames.write(b.step);
      } else {
        w.begin_list();
        w.end_list();
      }
      w.end_dict();
    }
    w.end_list();
    w.end_dict();
  }
  w.end_list();

  w.string("device_traces");
  w.begin_list();
  w.begin_list();
  auto entry = [&](const char* action, const AllocatorAction& a, int64_t size, int step) {
    w.begin_dict();
    key_str(w, "action", action);
    key_int(w, "addr", a.address);
    key_int(w, "size", size);
    key_int(w, "stream", 0);
    w.string("frames");
    frames.write(step);
  };
  for (const auto& [a, step] : t.actions) {
    switch (a.kind) {
      case AllocatorAction::kAlloc:
        entry("alloc", a, a.requested, step);
        key_str(w, "category", category_name(t.steps[step].category));
        key_int(w, "block_size", a.size);
        w.end_dict();
        break;
      case AllocatorAction::kFree:
        entry("free_requested", a, a.requested, step);
        w.end_dict();
        entry("free_completed", a, a.requested, step);
        w.end_dict();
        break;
      case AllocatorAction::kSegmentAlloc:
      case AllocatorAction::kSegmentFree:
      case AllocatorAction::kSegmentMap:
      case AllocatorAction::kSegmentUnmap: {
        const char* name = a.kind == AllocatorAction::kSegmentAlloc  ? "segment_alloc"
                           : a.kind == AllocatorAction::kSegmentFree ? "segment_free"
                           : a.kind == AllocatorAction::kSegmentMap  ? "segment_map"
                                                                     : "segment_unmap";
        entry(name, a, a.size, step);
        // memory_viz adds "unknown" to the categories it has seen with a typo
        // (snapshot.categores.push) that throws: segments name it themselves.
        key_str(w, "category", "unknown");
        w.end_dict();
        break;
      }
      case AllocatorAction::kOom:
        break;  // a run that does not fit is recorded with no limit (MemoryTimeline)
    }
  }
  w.end_list();
  w.end_list();
  w.end_dict();
  return w.finish();
}

// ------------------------------------------------------------------------------- the HTML page

namespace {

// The steps drawn: at most `budget`, each the step of its stretch with the most allocated, so
// that no peak is lost; the overall peak is always one of them.
std::vector<size_t> drawn_steps(const MemoryTimeline& t, size_t budget) {
  std::vector<size_t> out;
  size_t n = t.steps.size();
  if (n <= budget) {
    for (size_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  size_t stretch = (n + budget - 1) / budget;
  for (size_t begin = 0; begin < n; begin += stretch) {
    size_t end = std::min(n, begin + stretch), best = begin;
    for (size_t i = begin; i < end; ++i) {
      if (i == t.peak_step) {
        best = i;
        break;
      }
      if (t.steps[i].allocated > t.steps[best].allocated) best = i;
    }
    out.push_back(best);
  }
  return out;
}

nlohmann::json page_data(const MemoryReport& r, const MemoryTimeline& t) {
  using nlohmann::json;
  json d;
  d["source"] = r.source;
  d["train"] = r.train;
  d["optimizer"] = r.optimizer;
  d["precision"] = r.precision;
  d["target"] = r.target == Target::kCuda ? "CUDA" : "CPU";
  d["gpu"] = r.gpu ? r.gpu->name : "";
  d["capacity"] = r.capacity;
  d["device_overhead"] = r.device_overhead;
  d["fits"] = r.fits ? json(*r.fits) : json();
  d["allocated_peak"] = r.allocator.allocated_peak;
  d["reserved_peak"] = r.allocator.reserved_peak;
  json cats = json::array();
  for (int c = 0; c < kCategories; ++c) cats.push_back(std::string(category_name(Category(c))));
  d["categories"] = cats;
  d["ops"] = t.ops;
  json modules = json::array();
  for (size_t m = 0; m < t.modules.size(); ++m) modules.push_back(module_label(t, int(m)));
  d["modules"] = modules;

  // The steps drawn, column by column.
  json step = json::array(), allocated = json::array(), reserved = json::array(),
       live = json::array(), stack = json::array(), module = json::array(), phase = json::array();
  for (size_t i : drawn_steps(t, 4000)) {
    const auto& s = t.steps[i];
    step.push_back(i);
    allocated.push_back(s.allocated);
    reserved.push_back(s.reserved);
    live.push_back(s.live);
    stack.push_back(s.stack >= 0 ? json(t.stacks[s.stack]) : json::array({s.op}));
    module.push_back(s.module);
    phase.push_back(
        fmt::format("{}{}", phase_name(s.phase),
                    s.phase == Phase::kSetup ? "" : fmt::format(" {}", s.iteration + 1)));
  }
  d["steps"] = {{"step", step},   {"allocated", allocated}, {"reserved", reserved},
                {"live", live},   {"stack", stack},         {"module", module},
                {"phase", phase}, {"count", t.steps.size()}};

  // The phases as stretches of steps: "forward 1" from step a to step b.
  json phases = json::array();
  for (size_t i = 0; i < t.steps.size(); ++i) {
    const auto& s = t.steps[i];
    std::string name(phase_name(s.phase));
    bool same = !phases.empty() && phases.back()["phase"] == name &&
                phases.back()["iteration"] == s.iteration + 1;
    if (same) {
      phases.back()["end"] = i + 1;
    } else {
      phases.push_back(
          {{"phase", name}, {"iteration", s.iteration + 1}, {"start", i}, {"end", i + 1}});
    }
  }
  d["phases"] = phases;

  const auto& p = t.steps.empty() ? MemoryTimeline::Step{} : t.steps[t.peak_step];
  d["peak"] = {{"bytes", r.peak.bytes},
               {"step", t.peak_step},
               {"op", r.peak.op},
               {"module", r.peak.module.empty() ? "model" : r.peak.module},
               {"phase", std::string(phase_name(r.peak.phase))},
               {"iteration", r.peak.iteration + 1},
               {"by_category", r.peak.by_category},
               {"reserved", p.reserved}};
  json mods = json::array();
  for (const auto& m : r.modules)
    mods.push_back(
        {{"module", m.module.empty() ? "model" : m.module}, {"type", m.type}, {"bytes", m.bytes}});
  d["modules_at_peak"] = mods;

  json segments = json::array();
  if (!t.steps.empty())
    for (const SegmentAt& seg : segments_at(t, t.peak_step)) {
      json blocks = json::array();
      for (const auto& b : seg.blocks) {
        if (b.step < 0) {
          blocks.push_back({b.address - seg.address, b.size});
          continue;
        }
        const auto& s = t.steps[b.step];
        blocks.push_back({b.address - seg.address, b.size, b.requested, int(s.category),
                          s.stack >= 0 ? t.stacks[s.stack].front() : s.op, s.op, s.module});
      }
      segments.push_back(
          {{"address", seg.address}, {"size", seg.size}, {"small", seg.small}, {"blocks", blocks}});
    }
  d["segments"] = segments;
  d["notes"] = r.notes;
  return d;
}

// JSON inside a <script> element: a "<" could end the element ("</script>") or open a comment
// that changes how the rest is parsed ("<!--"); it only occurs inside JSON strings, where
// "\u003c" means the same character.
std::string script_safe(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  for (char c : json) {
    if (c == '<')
      out += "\\u003c";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string memory_html(const MemoryReport& r) {
  const MemoryTimeline& t = timeline_of(r, "`html`");
  std::string page = detail::kMemoryReportHtml;
  const std::string slot = "/*FOOTPRINT_DATA*/null";
  auto at = page.find(slot);
  if (at == std::string::npos) throw Error("the HTML template has no data slot");
  page.replace(
      at, slot.size(),
      script_safe(page_data(r, t).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  return page;
}

}  // namespace footprint
