// The settings of a training run as one table, so that the checkpoint's __metadata__, config.json and the
// resume check all walk the same list. Each entry names a TrainConfig field (by its config.json key, e.g.
// "image_size"; the flag is the same with '-') and says whether a checkpoint fixes it: a resumed run takes the
// model, the data and the optimisation from its checkpoint and may change only how long it runs and how often it
// writes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "began/train_config.h"

namespace atelier::began {

struct SettingRef {
  std::string key;           // "image_size"
  bool fixed_by_checkpoint;  // true: a resumed run must keep the checkpoint's value
  std::variant<int64_t*, uint64_t*, int*, double*, bool*, std::string*> value;  // into one TrainConfig
  // Added after the first checkpoints were written: a checkpoint without it stands for the default (the value
  // that reproduces what the older program did).
  bool may_be_absent = false;
};

// "image_size" -> "--image-size".
std::string flag_name(const std::string& key);

// Every saved setting of `config`, pointing into it.
std::vector<SettingRef> settings_of(TrainConfig& config);

// The value as text that round-trips exactly: integers in decimal, doubles as hex-float ("%a"), bools as
// "true"/"false".
std::string setting_text(const SettingRef& setting);
// Parses text from setting_text into the setting; throws naming the key and the text when it does not parse.
void set_setting_text(const SettingRef& setting, const std::string& text);

// The settings as checkpoint metadata ("setting.<key>" -> setting_text).
std::map<std::string, std::string> settings_metadata(const TrainConfig& config);

// On --resume: `config` with every setting the checkpoint fixes (and, unless given, the others) taken from
// `metadata`. A setting in config.given whose value differs from a fixed one throws one Error naming every such
// flag, both values and the checkpoint.
TrainConfig merge_checkpoint_settings(const TrainConfig& config, const std::map<std::string, std::string>& metadata,
                                      const std::string& checkpoint_path);

// True when `text` is valid UTF-8: config.json and the checkpoint's metadata are JSON, which holds only that, so
// resolve_config refuses a path setting that is not (a folder name with a Latin-1 byte, say) before any work.
bool is_utf8(const std::string& text);

// config.json: every setting with its type (numbers as JSON numbers), plus the version, the thread count, the
// device and, for a resumed run, the checkpoint it continued from. Indented text.
std::string config_json(const TrainConfig& config, int threads);

}  // namespace atelier::began
