// Writes the seed corpora of tests/fuzz/corpus/ (run once by hand, the output committed): small valid files for
// each fuzz target, so the fuzzers start from inputs that pass the readers' first checks.
//   build/fuzz/bin/fuzz_make_seeds tests/fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "atelier.h"
#include "began/data/image_folder.h"
#include "tests/image_tree.h"

using namespace atelier;

namespace {

namespace fs = std::filesystem;

void write_seeds(const std::string& dir) {
  for (const char* target : {"fuzz_safetensors", "fuzz_idx", "fuzz_checkpoint", "fuzz_image_folder"}) {
    fs::create_directories(dir + "/" + target);  // a fresh CORPUS_DIR works too
  }
  // safetensors: every dtype, a scalar, an empty tensor, metadata.
  nn::save_safetensors(dir + "/fuzz_safetensors/all_dtypes.safetensors",
                       {{"f32", tensor({1.5, -2.0})},
                        {"f64", scalar_tensor(3.0, DType::Float64)},
                        {"i64", arange(3)},
                        {"u8", full({2, 2}, 7.0, DType::UInt8)},
                        {"b", full({3}, 1.0, DType::Bool)},
                        {"empty", zeros({0, 4})}},
                       {{"step", "12"}});
  nn::save_safetensors(dir + "/fuzz_safetensors/empty.safetensors", {});

  // IDX: plain and gzip, 1 and 3 dimensions.
  nn::write_idx(dir + "/fuzz_idx/labels.idx", nn::IdxArray{{5}, {0, 1, 2, 3, 4}}, false);
  nn::write_idx(dir + "/fuzz_idx/images.idx.gz", nn::IdxArray{{2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
                true);

  // A checkpoint of fuzz_checkpoint's model and optimiser, after one step (so Adam has state), and one of the
  // model alone.
  auto model = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(2, 3), std::make_shared<nn::ELU>(),
                                                std::make_shared<nn::Linear>(3, 1));
  nn::Adam optimizer(model->parameters(), 1e-3);
  Tensor loss = model->forward(ones({4, 2})).sum();
  loss.backward();
  optimizer.step();
  nn::save_checkpoint(dir + "/fuzz_checkpoint/model_and_adam.safetensors", *model, &optimizer, {{"step", "1"}});
  nn::save_checkpoint(dir + "/fuzz_checkpoint/model_only.safetensors", *model);

  // Images: every file of the tests' image tree (each JPEG and PNG kind, and the truncated and garbage ones), flat.
  const fs::path tree = fs::temp_directory_path() / "atelier-fuzz-seed-tree";
  fs::remove_all(tree);
  testing::write_image_tree(tree.string());
  for (const auto& entry : fs::recursive_directory_iterator(tree)) {
    if (!entry.is_regular_file() || !began::is_image_name(entry.path().filename().string())) continue;
    std::string flat = fs::relative(entry.path(), tree).generic_string();
    for (char& c : flat) c = c == '/' ? '_' : c;
    fs::copy_file(entry.path(), dir + "/fuzz_image_folder/" + flat, fs::copy_options::overwrite_existing);
  }
  fs::remove_all(tree);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  try {
    write_seeds(argv[1]);
  } catch (const std::exception& e) {  // atelier::Error and std::filesystem's errors: one line, no abort
    std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
