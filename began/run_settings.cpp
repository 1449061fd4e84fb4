// The settings table of a training run (began/run_settings.h): text forms for checkpoint metadata, the resume
// merge, and config.json.
#include "began/run_settings.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "backends/error.h"
#include "began/number_text.h"
#include "began/run_files.h"

namespace atelier::began {

namespace {

constexpr bool kFixed = true;  // a checkpoint fixes it
constexpr bool kFree = false;  // a resumed run may change it
constexpr bool kNewer = true;  // may be absent from a checkpoint (SettingRef::may_be_absent)
const std::string kMetadataPrefix = "setting.";

template <typename T>
T parse_integer(const std::string& key, const std::string& text) {
  T value{};
  const std::string why = read_whole_number(text, &value);
  ATELIER_CHECK(why.empty(), "setting '" << key << "': '" << text << "' is " << why);
  return value;
}

// The value for a person to read: doubles in their shortest decimal form, the rest as setting_text.
std::string display_text(const SettingRef& setting) {
  if (const double* const* v = std::get_if<double*>(&setting.value)) return shortest_text(**v);
  return setting_text(setting);
}

}  // namespace

std::string flag_name(const std::string& key) {
  std::string flag = "--" + key;
  for (char& c : flag) c = c == '_' ? '-' : c;
  return flag;
}

std::vector<SettingRef> settings_of(TrainConfig& c) {
  return {
      {"data", kFixed, &c.data},
      {"synthetic_size", kFixed, &c.synthetic_size},
      {"crop", kFixed, &c.crop, kNewer},
      {"flip", kFixed, &c.flip, kNewer},
      {"image_size", kFixed, &c.model.image_size},
      {"channels", kFixed, &c.model.channels},
      {"n", kFixed, &c.model.n},
      {"h", kFixed, &c.model.h},
      {"skip", kFixed, &c.model.skip},
      {"tanh", kFixed, &c.model.tanh},
      {"batch", kFixed, &c.batch},
      {"gamma", kFixed, &c.step.gamma},
      {"lambda_k", kFixed, &c.step.lambda_k},
      {"k0", kFixed, &c.k0, kNewer},
      {"pull_away", kFixed, &c.step.pull_away, kNewer},
      {"lr", kFixed, &c.lr},
      {"beta1", kFixed, &c.beta1},
      {"beta2", kFixed, &c.beta2},
      {"lr_window", kFixed, &c.lr_window},
      {"lr_threshold", kFixed, &c.lr_threshold},
      {"lr_factor", kFixed, &c.lr_factor},
      {"lr_min", kFixed, &c.lr_min},
      {"seed", kFixed, &c.seed},
      {"sample_count", kFixed, &c.sample_count},
      {"epochs", kFree, &c.epochs},
      {"steps", kFree, &c.steps},
      {"checkpoint_every", kFree, &c.checkpoint_every},
      {"sample_every", kFree, &c.sample_every},
      {"data_dir", kFree, &c.data_dir},
      {"cache", kFree, &c.cache, kNewer},
  };
}

std::string setting_text(const SettingRef& setting) {
  struct {
    std::string operator()(const int64_t* v) const { return std::to_string(*v); }
    std::string operator()(const uint64_t* v) const { return std::to_string(*v); }
    std::string operator()(const int* v) const { return std::to_string(*v); }
    std::string operator()(const double* v) const {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%a", *v);
      return buf;
    }
    std::string operator()(const bool* v) const { return *v ? "true" : "false"; }
    std::string operator()(const std::string* v) const { return *v; }
  } text;
  return std::visit(text, setting.value);
}

void set_setting_text(const SettingRef& setting, const std::string& text) {
  const std::string& key = setting.key;
  struct {
    const std::string& key;
    const std::string& text;
    void operator()(int64_t* v) const { *v = parse_integer<int64_t>(key, text); }
    void operator()(uint64_t* v) const { *v = parse_integer<uint64_t>(key, text); }
    void operator()(int* v) const { *v = parse_integer<int>(key, text); }
    void operator()(double* v) const {
      char* end = nullptr;
      const double value = std::strtod(text.c_str(), &end);
      ATELIER_CHECK(!text.empty() && end && *end == '\0' && std::isfinite(value),
                    "setting '" << key << "': '" << text << "' is not a number (finite, as every setting is)");
      *v = value;
    }
    void operator()(bool* v) const {
      ATELIER_CHECK(text == "true" || text == "false",
                    "setting '" << key << "': '" << text << "' is not true or false");
      *v = text == "true";
    }
    void operator()(std::string* v) const { *v = text; }
  } assign{key, text};
  std::visit(assign, setting.value);
}

std::map<std::string, std::string> settings_metadata(const TrainConfig& config) {
  TrainConfig copy = config;
  std::map<std::string, std::string> out;
  for (const SettingRef& s : settings_of(copy)) out[kMetadataPrefix + s.key] = setting_text(s);
  return out;
}

TrainConfig merge_checkpoint_settings(const TrainConfig& config, const std::map<std::string, std::string>& metadata,
                                      const std::string& checkpoint_path) {
  TrainConfig merged = config, saved = config, defaults;
  std::vector<SettingRef> mine = settings_of(merged), theirs = settings_of(saved);
  std::ostringstream conflicts;
  for (size_t i = 0; i < mine.size(); ++i) {
    auto it = metadata.find(kMetadataPrefix + mine[i].key);
    if (it == metadata.end() && mine[i].may_be_absent) {
      // An older checkpoint: the default is what it ran with.
      const SettingRef fresh = settings_of(defaults)[i];
      ATELIER_CHECK(!config.given.count(mine[i].key) || !mine[i].fixed_by_checkpoint ||
                        setting_text(mine[i]) == setting_text(fresh),
                    "--resume: " << flag_name(mine[i].key) << " " << display_text(mine[i]) << ": the checkpoint "
                                 << checkpoint_path << " predates this setting and ran with " << display_text(fresh));
      if (!config.given.count(mine[i].key)) set_setting_text(mine[i], setting_text(fresh));
      continue;
    }
    ATELIER_CHECK(it != metadata.end(), "--resume: the checkpoint " << checkpoint_path << " has no setting '"
                                                                    << mine[i].key
                                                                    << "' (not a checkpoint of `began train`?)");
    try {
      set_setting_text(theirs[i], it->second);
    } catch (const Error& e) {
      ATELIER_FAIL("checkpoint " << checkpoint_path << ": " << e.what());
    }
    const bool given = config.given.count(mine[i].key) > 0;
    if (given && mine[i].fixed_by_checkpoint && setting_text(mine[i]) != setting_text(theirs[i])) {
      conflicts << (conflicts.tellp() > 0 ? "; " : "") << flag_name(mine[i].key) << " " << display_text(mine[i])
                << " (the run has " << display_text(theirs[i]) << ")";
    }
    if (!given) set_setting_text(mine[i], setting_text(theirs[i]));
  }
  ATELIER_CHECK(conflicts.tellp() == 0, "--resume: " << conflicts.str() << ": a resumed run keeps the settings of "
                                                     << checkpoint_path
                                                     << "; drop the flag, or start a new run with another --out");
  return merged;
}

bool is_utf8(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();  // the same check the writers of config.json and the metadata make
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

std::string config_json(const TrainConfig& config, int threads) {
  TrainConfig copy = config;
  nlohmann::ordered_json j;
  for (const SettingRef& s : settings_of(copy)) {
    std::visit([&](auto* v) { j[s.key] = *v; }, s.value);
  }
  j["out"] = config.out;
  j["device"] = config.device;
  j["precision"] = config.precision;
  j["progress_seconds"] = config.progress_seconds;
  j["threads"] = threads;
  j["cuda_graph"] = uses_cuda_graph(config) ? "on" : "off";
  j["version"] = config.version;
  j["resumed_from"] =
      config.resume_checkpoint.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(config.resume_checkpoint);
  return j.dump(2) + "\n";
}

}  // namespace atelier::began
