#pragma once
// footprint/hub.h: a Hugging Face Hub model name ("meta-llama/Llama-3.1-8B") found in
// huggingface_hub's cache, as huggingface_hub lays it out ("Understand caching" in its docs):
//   HF_HUB_CACHE/models--meta-llama--Llama-3.1-8B/refs/main          the commit of a revision
//   HF_HUB_CACHE/models--meta-llama--Llama-3.1-8B/snapshots/COMMIT/  the files at that commit
// The cache is HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, else
// XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. Reading it is data only: the
// download of a name not cached is huggingface_hub's (footprint llm runs it, honouring its
// offline mode and tokens).
#include <optional>
#include <string>

namespace footprint {

// "org/name", each part letters, digits, '-', '_' and '.' (not "." or ".."), as the Hub names
// repositories; an existing path is never taken for one.
bool is_hub_name(const std::string& text);
std::string hub_cache_dir();
// HF_HUB_OFFLINE set to 1, ON, YES or TRUE (huggingface_hub's reading of it).
bool hub_offline();

struct HubFiles {
  std::string snapshot;  // the snapshot's folder
  std::string config;    // its config.json
  std::string index;     // its model.safetensors.index.json, or "" when the cache has none
};

// The files of `name` at `revision` (a branch or tag, whose commit refs/ holds, or a 40-digit
// commit; "" is "main") in the cache, or nullopt when its config.json is not there.
std::optional<HubFiles> hub_cached(const std::string& name, const std::string& revision);

}  // namespace footprint
