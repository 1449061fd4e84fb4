// Training checkpoints (began/train_checkpoint.h): the tensors under their prefixes and the position as metadata.
#include "began/train_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "backends/error.h"
#include "began/number_text.h"
#include "began/run_settings.h"

namespace atelier::began {

namespace {

constexpr const char* kFormat = "atelier-began-train-1";

std::string hex(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

void add_prefixed(nn::NamedTensors& all, const std::string& prefix, const nn::NamedTensors& part) {
  for (const auto& [name, t] : part) all.emplace_back(prefix + name, t);
}

// The entries of `file` under `prefix`, with the prefix removed.
nn::NamedTensors take_prefixed(const nn::SafetensorsFile& file, const std::string& prefix) {
  nn::NamedTensors out;
  for (const auto& [name, t] : file.tensors) {
    if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
  }
  return out;
}

// The networks' parameters and fixed_z hold finite numbers: `began train` checks its parameters before every
// checkpoint, so a NaN or infinity here was put in the file outside it. Resuming from it would diverge at its
// first step and call the file "the last good checkpoint"; sampling from it would draw blank grids. (Adam's second
// moments may overflow to infinity in a good run, so the optimisers' tensors are not checked.)
void check_finite_networks(const nn::SafetensorsFile& file, const std::string& path) {
  for (const auto& [name, t] : file.tensors) {
    const bool network = name.rfind("G.", 0) == 0 || name.rfind("D.", 0) == 0 || name == "fixed_z";
    if (!network || !is_floating(t.dtype())) continue;
    const std::vector<double> values = t.to(DType::Float64).to_vector<double>();
    const auto bad = std::find_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); });
    ATELIER_CHECK(bad == values.end(), "checkpoint " << path << ": " << name << " holds " << *bad << " at element "
                                                     << (bad - values.begin())
                                                     << "; began train writes only finite parameters, so the file "
                                                        "was changed outside it");
  }
}

const std::string& field(const std::map<std::string, std::string>& metadata, const std::string& key,
                         const std::string& path) {
  auto it = metadata.find(key);
  ATELIER_CHECK(it != metadata.end(), "checkpoint " << path << ": no '" << key << "' in its metadata");
  return it->second;
}

// A whole number from 0 to `hi` (read strictly: no wrapping or saturating, began/number_text.h).
int64_t integer_field(const std::map<std::string, std::string>& metadata, const std::string& key,
                      const std::string& path, int64_t hi = std::numeric_limits<int64_t>::max()) {
  const std::string& text = field(metadata, key, path);
  int64_t v = 0;
  const std::string why = read_whole_number<int64_t>(text, &v, 0, hi);
  ATELIER_CHECK(why.empty(), "checkpoint " << path << ": '" << key << "' is '" << text << "', " << why);
  return v;
}

// A finite number from `lo` to `hi` (`range` says so in words).
double double_field(const std::map<std::string, std::string>& metadata, const std::string& key, const std::string& path,
                    double lo, double hi, const char* range) {
  const std::string& text = field(metadata, key, path);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  ATELIER_CHECK(!text.empty() && *end == '\0' && v >= lo && v <= hi,
                "checkpoint " << path << ": '" << key << "' is '" << text << "', not a number " << range);
  return v;
}

}  // namespace

void save_train_checkpoint(const std::string& path, const TrainConfig& config, const TrainPosition& position,
                           const TrainState& state) {
  nn::NamedTensors all;
  add_prefixed(all, "G.", state.G.state_dict());
  add_prefixed(all, "D.", state.D.state_dict());
  add_prefixed(all, "opt_g.", state.opt_g.state_dict());
  add_prefixed(all, "opt_d.", state.opt_d.state_dict());
  add_prefixed(all, "schedule.", state.schedule.state_dict());
  all.emplace_back("fixed_z", state.fixed_z);

  std::map<std::string, std::string> metadata = settings_metadata(config);
  metadata["format"] = kFormat;
  metadata["step"] = std::to_string(position.step);
  metadata["epoch"] = std::to_string(position.epoch);
  metadata["batch_in_epoch"] = std::to_string(position.batch_in_epoch);
  metadata["k_t"] = hex(position.k);
  metadata["time_s"] = hex(position.time_s);
  metadata["threads"] = std::to_string(position.threads);
  if (config.folder) metadata["data_images"] = config.folder->fingerprint();  // checked on --resume
  nn::save_safetensors(path, all, metadata);
}

std::map<std::string, std::string> read_train_metadata(const std::string& path) {
  std::map<std::string, std::string> metadata = nn::load_safetensors(path).metadata;
  auto it = metadata.find("format");
  ATELIER_CHECK(it != metadata.end() && it->second == kFormat,
                "checkpoint " << path << " is not a `began train` checkpoint (format '"
                              << (it == metadata.end() ? std::string("none") : it->second) << "', expected '" << kFormat
                              << "')");
  return metadata;
}

TrainPosition train_position(const std::map<std::string, std::string>& metadata, const std::string& path) {
  TrainPosition p;
  p.step = integer_field(metadata, "step", path);
  p.epoch = integer_field(metadata, "epoch", path);
  p.batch_in_epoch = integer_field(metadata, "batch_in_epoch", path);
  p.k = double_field(metadata, "k_t", path, 0, 1, "in [0, 1]");  // k_t is clipped to [0, 1] after every step
  p.time_s = double_field(metadata, "time_s", path, 0, std::numeric_limits<double>::max(), ">= 0");
  p.threads = static_cast<int>(integer_field(metadata, "threads", path, std::numeric_limits<int>::max()));
  return p;
}

void load_train_state(const std::string& path, const TrainState& state) {
  nn::SafetensorsFile file = nn::load_safetensors(path);
  check_finite_networks(file, path);
  auto load = [&](const char* what, auto&& load_fn) {
    try {
      load_fn();
    } catch (const Error& e) {
      ATELIER_FAIL("checkpoint " << path << ": " << what << " does not match: " << e.what());
    }
  };
  load("G", [&] { state.G.load_state_dict(take_prefixed(file, "G.")); });
  load("D", [&] { state.D.load_state_dict(take_prefixed(file, "D.")); });
  load("opt_g", [&] { state.opt_g.load_state_dict(take_prefixed(file, "opt_g.")); });
  load("opt_d", [&] { state.opt_d.load_state_dict(take_prefixed(file, "opt_d.")); });
  load("schedule", [&] { state.schedule.load_state_dict(take_prefixed(file, "schedule.")); });
  const Tensor& z = file.at("fixed_z");
  ATELIER_CHECK(z.shape() == state.fixed_z.shape(), "checkpoint " << path << ": fixed_z is " << shape_str(z.shape())
                                                                  << ", expected " << shape_str(state.fixed_z.shape()));
  state.fixed_z = z.to(state.fixed_z.device());
}

std::string model_settings_text(const TrainConfig& c) {
  std::ostringstream os;
  os << "data " << c.data << ", image_size " << c.model.image_size << ", channels " << c.model.channels << ", n "
     << c.model.n << ", h " << c.model.h << ", skip " << (c.model.skip ? "on" : "off") << ", tanh "
     << (c.model.tanh ? "on" : "off");
  return os.str();
}

CheckpointNetworks load_checkpoint_networks(const std::string& path, Device device) {
  nn::SafetensorsFile file = nn::load_safetensors(path);
  auto format = file.metadata.find("format");
  if (format == file.metadata.end() || format->second != kFormat) {
    // Say what the file holds instead: its metadata (e.g. the classifier's "model FmnistClassifier, epochs 3").
    ATELIER_FAIL("checkpoint " << path << " holds another model, not a `began train` checkpoint (its metadata: "
                               << nn::metadata_summary(file.metadata) << ")");
  }
  CheckpointNetworks out;
  out.config = merge_checkpoint_settings(TrainConfig{}, file.metadata, path);
  out.position = train_position(file.metadata, path);
  check_finite_networks(file, path);
  try {
    check_model_config(out.config.model);
    out.G = std::make_shared<Generator>(out.config.model);
    out.D = std::make_shared<Discriminator>(out.config.model);
    out.G->load_state_dict(take_prefixed(file, "G."));
    out.D->load_state_dict(take_prefixed(file, "D."));
  } catch (const Error& e) {
    ATELIER_FAIL("checkpoint " << path << ": its networks do not fit its settings (" << model_settings_text(out.config)
                               << "): " << e.what());
  }
  out.G->to(device);
  out.D->to(device);
  out.G->eval();
  out.D->eval();
  return out;
}

}  // namespace atelier::began
