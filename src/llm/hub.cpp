#include "footprint/hub.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>

namespace footprint {

namespace {

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool hub_part(const std::string& p) {
  if (p.empty() || p.size() > 96 || p == "." || p == "..") return false;
  return std::all_of(p.begin(), p.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool is_commit(const std::string& r) {
  return r.size() == 40 &&
         std::all_of(r.begin(), r.end(), [](unsigned char c) { return std::isxdigit(c); });
}

}  // namespace

bool is_hub_name(const std::string& text) {
  size_t slash = text.find('/');
  if (slash == std::string::npos || text.find('/', slash + 1) != std::string::npos) return false;
  if (exists(text)) return false;
  return hub_part(text.substr(0, slash)) && hub_part(text.substr(slash + 1));
}

std::string hub_cache_dir() {
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"})
    if (!env(name).empty()) return env(name);
  if (!env("HF_HOME").empty()) return env("HF_HOME") + "/hub";
  if (!env("XDG_CACHE_HOME").empty()) return env("XDG_CACHE_HOME") + "/huggingface/hub";
  return env("HOME") + "/.cache/huggingface/hub";
}

bool hub_offline() {
  std::string v = env("HF_HUB_OFFLINE");
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::toupper(c); });
  return v == "1" || v == "ON" || v == "YES" || v == "TRUE";
}

std::optional<HubFiles> hub_cached(const std::string& name, const std::string& revision) {
  if (!is_hub_name(name)) return std::nullopt;
  std::string repo = hub_cache_dir() + "/models--" + name.substr(0, name.find('/')) + "--" +
                     name.substr(name.find('/') + 1);
  std::string rev = revision.empty() ? "main" : revision;
  std::string commit = rev;
  if (!is_commit(rev)) {
    // refs/NAME holds the commit; a branch name may hold '/' (refs/pr/1), never "..".
    if (rev.find("..") != std::string::npos) return std::nullopt;
    std::ifstream ref(repo + "/refs/" + rev);
    if (!std::getline(ref, commit)) return std::nullopt;
    commit.erase(std::remove_if(commit.begin(), commit.end(),
                                [](unsigned char c) { return std::isspace(c); }),
                 commit.end());
    if (!is_commit(commit)) return std::nullopt;
  }
  HubFiles f;
  f.snapshot = repo + "/snapshots/" + commit;
  f.config = f.snapshot + "/config.json";
  if (!exists(f.config)) return std::nullopt;
  std::string index = f.snapshot + "/model.safetensors.index.json";
  if (exists(index)) f.index = index;
  return f;
}

}  // namespace footprint
