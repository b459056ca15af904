// Sharded checkpoints through their index (model.safetensors.index.json,
// pytorch_model.bin.index.json):
//   {"metadata": {"total_size": <bytes>}, "weight_map": {"<tensor>": "<shard file>", ...}}
// Each shard is read from its own metadata, beside the index. A shard name must stay in the
// index's folder: absolute paths and ".." are refused.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "footprint/error.h"
#include "formats/readers.h"

namespace footprint::detail {

Model read_sharded(const ByteSource& index) {
  const std::string& file = index.name();
  if (index.size() > kMaxIndexBytes)
    throw Error(fmt::format("{}: index is {} bytes, over the index-size limit of {}", file,
                            index.size(), kMaxIndexBytes));
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(index.read_string(0, index.size()));
  } catch (const nlohmann::ordered_json::exception& e) {
    std::string why = e.what();
    throw Error(
        fmt::format("{}: index is not valid JSON ({})", file, why.substr(why.find(']') + 2)));
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error(
        fmt::format("{}: index has no object 'weight_map' of tensor name -> shard file", file));
  std::string dir = index.path();
  dir = dir.find('/') == std::string::npos ? "" : dir.substr(0, dir.rfind('/') + 1);

  std::vector<std::string> shards;  // in order of first appearance
  std::map<std::string, std::string> shard_of;
  for (const auto& [name, shard] : j["weight_map"].items()) {
    if (!shard.is_string())
      throw Error(fmt::format("{}: weight_map['{}'] is not a file name", file, name));
    std::string s = shard.get<std::string>();
    if (s.empty() || s[0] == '/' || s == ".." || s.rfind("../", 0) == 0 ||
        s.find("/../") != std::string::npos ||
        (s.size() >= 3 && s.compare(s.size() - 3, 3, "/..") == 0))
      throw Error(fmt::format("{}: weight_map['{}'] names shard '{}', outside the index's folder",
                              file, name, s));
    if (std::find(shards.begin(), shards.end(), s) == shards.end()) shards.push_back(s);
    shard_of[name] = s;
  }
  Model model;
  model.source = file;
  model.roles = RoleSource::kByName;
  std::string shard_format;
  for (const auto& s : shards) {
    Model part = read_path(dir + s, false);
    if (shard_format.empty()) shard_format = part.format;
    std::set<std::string> found;
    int64_t extra = 0;
    for (auto& t : part.tensors) {
      auto it = shard_of.find(t.name);
      if (it == shard_of.end() || it->second != s) {
        ++extra;
        continue;
      }
      found.insert(t.name);
      t.file = s;
      model.tensors.push_back(std::move(t));
    }
    for (const auto& [name, where] : shard_of)
      if (where == s && !found.count(name))
        throw Error(fmt::format(
            "{}: the index puts tensor '{}' in shard '{}', which does not hold it", file, name, s));
    if (extra)
      model.notes.push_back(fmt::format(
          "not counted: shard '{}' holds {} tensor(s) the index does not list", s, extra));
  }
  model.format =
      fmt::format("sharded {} ({} shard{})", shard_format.empty() ? "checkpoint" : shard_format,
                  shards.size(), shards.size() == 1 ? "" : "s");
  if (j.contains("metadata") && j["metadata"].is_object() && j["metadata"].contains("total_size") &&
      j["metadata"]["total_size"].is_number()) {
    int64_t bytes = 0;
    for (const auto& t : model.tensors) bytes += t.bytes();
    double declared = j["metadata"]["total_size"].get<double>();
    if (declared != static_cast<double>(bytes))
      model.notes.push_back(
          fmt::format("the index's metadata.total_size is {} but the shards' tensors take {} bytes",
                      j["metadata"]["total_size"].dump(), bytes));
  }
  return model;
}

}  // namespace footprint::detail
