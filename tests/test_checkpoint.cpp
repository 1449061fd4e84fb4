// Checkpoints (nn/checkpoint.h): safetensors round trips bit for bit, the header layout, every malformed file the
// reader must refuse (written byte by byte here), atomic writes, and module + optimiser checkpoints.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>

#include <dirent.h>
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atelier.h"
#include "tests/test_util.h"

using namespace atelier;
using nn::NamedTensors;
using testing::check_throws_with;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

namespace {

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>(v >> (8 * i));
  return s;
}

// A hand-made safetensors file: the length of `header` (no padding added), the header, then `data`.
void write_safetensors_by_hand(const std::string& path, const std::string& header, const std::string& data) {
  write_bytes(path, le64(header.size()) + header + data);
}

// The row-major bytes of t (contiguous, on the host).
std::string tensor_bytes(const Tensor& t) {
  Tensor c = raw::contiguous(t);
  return std::string(static_cast<const char*>(c.raw_data()), static_cast<size_t>(c.numel()) * dtype_size(c.dtype()));
}

void check_bit_identical(const Tensor& got, const Tensor& want) {
  CHECK(got.dtype() == want.dtype());
  CHECK(got.shape() == want.shape());
  CHECK(got.is_contiguous());
  CHECK(tensor_bytes(got) == tensor_bytes(want));
}

}  // namespace

TEST_CASE("checkpoint: safetensors round trip is bit for bit for every dtype, scalars, empty and strided tensors") {
  TempDir dir;
  manual_seed(7);
  const float inf = std::numeric_limits<float>::infinity();
  NamedTensors tensors = {
      {"f32", randn({3, 5})},
      {"f32.special", from_vector<float>({-0.0f, inf, -inf, std::nanf(""), 1e-40f /* subnormal */, 3.5f}, {6})},
      {"f64", randn({2, 2, 3}, DType::Float64)},
      {"i64",
       from_vector<int64_t>({-1, 0, std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()}, {2, 2})},
      {"u8", from_vector<uint8_t>({0, 1, 127, 128, 255}, {5})},
      {"bool", from_vector<bool>({true, false, false, true}, {4})},
      {"scalar", scalar_tensor(2.75)},
      {"scalar.i64", scalar_tensor(-3, DType::Int64)},
      {"empty", zeros({0, 3})},
      {"empty.middle", zeros({2, 0, 4}, DType::Int64)},
      {"transposed", randn({4, 3}).transpose(0, 1)},                     // strides (1, 3)
      {"strided", arange(0, 20, 1, DType::Float64).slice(0, 1, 20, 3)},  // step 3, offset 1
      {"expanded", tensor({1, 2, 3}).reshape({3, 1}).expand({3, 4})},    // stride 0
  };
  REQUIRE_FALSE(tensors[10].second.is_contiguous());
  const std::string path = dir.file("all.safetensors");
  nn::save_safetensors(path, tensors);
  nn::SafetensorsFile file = nn::load_safetensors(path);

  REQUIRE(file.tensors.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    INFO("tensor " << tensors[i].first);
    CHECK(file.tensors[i].first == tensors[i].first);  // header order = the order given
    check_bit_identical(file.tensors[i].second, tensors[i].second);
  }
  CHECK(file.metadata.empty());
  CHECK(file.at("scalar").shape() == Shape{});
  CHECK(file.at("scalar").item() == 2.75);
  check_throws_with([&] { file.at("nope"); }, {"no tensor named 'nope'"});
  // Saving what was loaded gives the same bytes: the writer is deterministic.
  const std::string again = dir.file("again.safetensors");
  nn::save_safetensors(again, file.tensors);
  CHECK(read_bytes(again) == read_bytes(path));
}

TEST_CASE("checkpoint: the header is padded to a multiple of 8, and an unpadded header is accepted") {
  TempDir dir;
  const std::string path = dir.file("pad.safetensors");
  for (const char* name : {"a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh"}) {
    nn::save_safetensors(path, {{name, tensor({1, 2, 3})}}, {{"k", "v"}});
    const std::string bytes = read_bytes(path);
    REQUIRE(bytes.size() >= 8);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
    INFO("name " << name << ", header " << n << " bytes");
    CHECK((8 + n) % 8 == 0);
    CHECK(bytes.size() == 8 + n + 12);
    const std::string header = bytes.substr(8, n);
    CHECK(header[0] == '{');
    // Only spaces after the closing brace; the metadata comes first.
    const size_t close = header.find_last_of('}');
    CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);
    CHECK(header.rfind("{\"__metadata__\":{\"k\":\"v\"}", 0) == 0);
  }

  // 57 bytes of header: 8 + 57 is not a multiple of 8.
  const std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  REQUIRE((8 + header.size()) % 8 != 0);
  std::string data(8, '\0');
  const float values[2] = {1.5f, -2.0f};
  std::memcpy(data.data(), values, 8);
  write_safetensors_by_hand(path, header, data);
  nn::SafetensorsFile file = nn::load_safetensors(path);
  REQUIRE(file.tensors.size() == 1);
  CHECK(file.at("x").to_vector<float>() == std::vector<float>{1.5f, -2.0f});

  // Unknown fields in an entry are ignored (the reference reader ignores them too); padding may be any whitespace.
  write_safetensors_by_hand(path, R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}}   )", data);
  CHECK(nn::load_safetensors(path).at("x").to_vector<float>() == std::vector<float>{1.5f, -2.0f});
}

TEST_CASE("checkpoint: metadata round trips, and a file may hold no tensors") {
  TempDir dir;
  const std::string path = dir.file("meta.safetensors");
  std::map<std::string, std::string> meta = {{"step", "1200"},
                                             {"k_t", "0.0123"},
                                             {"empty", ""},
                                             {"unicode", "caf\xc3\xa9 \xe2\x9c\x93"},
                                             {"quote", "a\"b\\c\n"}};
  nn::save_safetensors(path, {{"w", ones({2})}}, meta);
  CHECK(nn::load_safetensors(path).metadata == meta);

  nn::save_safetensors(path, {}, {{"only", "metadata"}});
  nn::SafetensorsFile file = nn::load_safetensors(path);
  CHECK(file.tensors.empty());
  CHECK(file.metadata.at("only") == "metadata");
  nn::save_safetensors(path, {});
  CHECK(nn::load_safetensors(path).tensors.empty());
}

TEST_CASE("checkpoint: the writer refuses bad names and undefined tensors before touching the disk") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  check_throws_with(
      [&] {
        nn::save_safetensors(path, {{"a", ones({1})}, {"a", ones({1})}});
      },
      {path, "duplicate tensor name 'a'"});
  check_throws_with([&] { nn::save_safetensors(path, {{"__metadata__", ones({1})}}); }, {path, "reserved"});
  check_throws_with([&] { nn::save_safetensors(path, {{"", ones({1})}}); }, {path, "empty name"});
  check_throws_with([&] { nn::save_safetensors(path, {{"u", Tensor()}}); }, {path, "tensor 'u' is undefined"});
  check_throws_with([&] { nn::save_safetensors(path, {{"bad\xff", ones({1})}}); }, {path, "not valid UTF-8"});
  CHECK(dir.list().empty());
}

TEST_CASE("checkpoint: the reader refuses every malformed file, naming the file and the fault") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  const std::string d8(8, '\0'), d12(12, '\0');
  // Writes header + data by hand, then expects load_safetensors to throw with the path and `phrase`.
  auto refuses = [&](const std::string& header, const std::string& data, const std::string& phrase) {
    INFO("header: " << header);
    write_safetensors_by_hand(path, header, data);
    check_throws_with([&] { nn::load_safetensors(path); }, {"'" + path + "'", phrase});
  };
  // {e1,e2,...}, built without `"literal" + std::string&&` (g++ 12 warns falsely about it: -Wrestrict).
  auto obj = [](std::initializer_list<std::string> entries) {
    std::string s = "{";
    for (const std::string& e : entries) s += (s.size() > 1 ? "," : "") + e;
    return s + "}";
  };
  auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape, const std::string& off) {
    return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape + ",\"data_offsets\":" + off + "}";
  };

  SUBCASE("not there, or too short") {
    check_throws_with([&] { nn::load_safetensors(dir.file("missing.safetensors")); },
                      {dir.file("missing.safetensors"), "cannot open", "No such file"});
    write_bytes(path, "");
    check_throws_with([&] { nn::load_safetensors(path); }, {path, "0 bytes, shorter than the 8-byte header length"});
    write_bytes(path, std::string("\x05\0\0", 3));
    check_throws_with([&] { nn::load_safetensors(path); }, {path, "3 bytes, shorter than the 8-byte header length"});
  }
  SUBCASE("header length over 100 MB or past the end") {
    write_bytes(path, le64(100'000'001) + "{}");
    check_throws_with([&] { nn::load_safetensors(path); }, {path, "header length 100000001 exceeds the 100 MB limit"});
    write_bytes(path, le64(~uint64_t{0}) + "{}");
    check_throws_with([&] { nn::load_safetensors(path); }, {path, "exceeds the 100 MB limit"});
    write_bytes(path, le64(40) + "{}");
    check_throws_with([&] { nn::load_safetensors(path); },
                      {path, "header length 40 runs past the end of the file (10 bytes)"});
  }
  SUBCASE("not a JSON object, or not JSON") {
    refuses("[1, 2]", "", "header is not a JSON object");
    refuses(" {}", "", "header is not a JSON object");
    refuses("", "", "header is not a JSON object");
    refuses("\"x\"", "", "header is not a JSON object");
    refuses("{\"a\": ", "", "header is not valid JSON");
    refuses("{\"a\":1,}", "", "header is not valid JSON");
    refuses("{} trailing", "", "header is not valid JSON");
    refuses("{\"\xff\":1}", "", "header is not valid JSON");  // not UTF-8
  }
  SUBCASE("duplicate names and duplicate fields") {
    refuses(obj({entry("a", "\"F32\"", "[2]", "[0,8]"), entry("a", "\"F32\"", "[2]", "[0,8]")}), d8,
            "duplicate name 'a'");
    refuses(R"({"a":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}})", d8,
            "duplicate key 'dtype' in the entry of 'a'");
    refuses(R"({"__metadata__":{"k":"1","k":"2"}})", "", "duplicate key 'k' in the entry of '__metadata__'");
  }
  SUBCASE("missing or mistyped fields") {
    refuses(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", d8, "tensor 'a': missing field \"dtype\"");
    refuses(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", d8, "tensor 'a': missing field \"shape\"");
    refuses(R"({"a":{"dtype":"F32","shape":[2]}})", d8, "tensor 'a': missing field \"data_offsets\"");
    refuses(R"({"a":[1,2]})", d8, "tensor 'a': entry is not a JSON object");
    refuses(obj({entry("a", "32", "[2]", "[0,8]")}), d8, "tensor 'a': field \"dtype\" is not a string");
    refuses(obj({entry("a", "\"F32\"", "\"2\"", "[0,8]")}), d8, "tensor 'a': field \"shape\" is not an array");
    refuses(obj({entry("a", "\"F32\"", "[-2]", "[0,8]")}), d8, "\"shape\" holds -2, not a non-negative integer");
    refuses(obj({entry("a", "\"F32\"", "[2.0]", "[0,8]")}), d8, "not a non-negative integer");
    refuses(obj({entry("a", "\"F32\"", "[[2]]", "[0,8]")}), d8, "not a non-negative integer");
    refuses(obj({entry("a", "\"F32\"", "[2]", "[0]")}), d8, "\"data_offsets\" is not an array of 2 integers");
    refuses(obj({entry("a", "\"F32\"", "[2]", "[0,8,8]")}), d8, "not an array of 2 integers");
    refuses(obj({entry("a", "\"F32\"", "[2]", "{}")}), d8, "not an array of 2 integers");
    refuses(obj({entry("a", "\"F32\"", "[2]", "[0,-8]")}), d8, "\"data_offsets\" holds -8");
    refuses(obj({entry("a", "\"F32\"", "[2]", "[8,0]")}), d8, "data_offsets [8, 0) end before they begin");
  }
  SUBCASE("__metadata__ that is not a map of strings") {
    refuses(R"({"__metadata__":[1]})", "", "\"__metadata__\" is not an object of strings");
    refuses(R"({"__metadata__":"x"})", "", "\"__metadata__\" is not an object of strings");
    refuses(R"({"__metadata__":{"step":12}})", "", "\"__metadata__\" entry 'step' is not a string");
  }
  SUBCASE("dtypes: unsupported spec dtypes and unknown names") {
    for (const char* dt : {"F16", "BF16", "I32", "I16", "I8", "U64", "U32", "U16", "F8_E4M3", "F8_E5M2"}) {
      refuses(obj({entry("x", std::string("\"") + dt + "\"", "[1]", "[0,8]")}), d8,
              std::string("unsupported dtype ") + dt + " for tensor 'x'");
    }
    refuses(obj({entry("x", "\"F17\"", "[2]", "[0,8]")}), d8,
            "tensor 'x': unknown dtype \"F17\": not a safetensors dtype");
    refuses(obj({entry("x", "\"f32\"", "[2]", "[0,8]")}), d8, "unknown dtype \"f32\"");
  }
  SUBCASE("byte length is not numel x element size, with overflow checks") {
    refuses(obj({entry("a", "\"F32\"", "[3]", "[0,8]")}), d8,
            "tensor 'a': data_offsets [0, 8) hold 8 bytes, but shape [3] of F32 needs 12");
    refuses(obj({entry("a", "\"I64\"", "[]", "[0,4]")}), d8.substr(0, 4), "needs 8");
    refuses(obj({entry("a", "\"F32\"", "[4611686018427387904,4]", "[0,8]")}), d8, "overflows 64 bits of bytes");
    refuses(obj({entry("a", "\"U8\"", "[4294967296,4294967296,0]", "[0,0]")}), "", "overflows 64 bits");
    refuses(obj({entry("a", "\"U8\"", "[0,4294967296,4294967296]", "[0,0]")}), "", "multiply past 2^63");
    refuses(obj({entry("a", "\"U8\"", "[18446744073709551615]", "[0,0]")}), "", "is too large");
  }
  SUBCASE("offsets out of range, holes, overlaps") {
    refuses(obj({entry("a", "\"F32\"", "[4]", "[0,16]")}), d8,
            "tensor 'a': data_offsets [0, 16) run past the end of the data (8 bytes)");
    refuses(obj({entry("a", "\"F32\"", "[1]", "[0,4]"), entry("b", "\"F32\"", "[1]", "[8,12]")}), d12,
            "hole in the data: bytes [4, 8) before tensor 'b' belong to no tensor");
    refuses(obj({entry("a", "\"F32\"", "[1]", "[4,8]")}), d8, "bytes [0, 4) before tensor 'a'");
    refuses(obj({entry("a", "\"F32\"", "[1]", "[0,4]")}), d8,
            "hole in the data: bytes [4, 8) at the end belong to no tensor");
    refuses(obj({entry("a", "\"F32\"", "[2]", "[0,8]"), entry("b", "\"F32\"", "[2]", "[4,12]")}), d12,
            "tensor 'b': data_offsets [4, 12) overlap tensor 'a' [0, 8)");
    refuses(obj({entry("a", "\"F32\"", "[2]", "[0,8]"), entry("b", "\"F32\"", "[2]", "[0,8]")}), d8, "overlap tensor");
    refuses(obj({entry("a", "\"F32\"", "[2]", "[0,8]"), entry("e", "\"F32\"", "[0]", "[4,4]")}), d8,
            "tensor 'e': data_offsets [4, 4) overlap tensor 'a'");
  }
  SUBCASE("BOOL bytes other than 0 and 1") {
    refuses(obj({entry("m", "\"BOOL\"", "[2]", "[0,2]")}), std::string("\x01\x02", 2),
            "tensor 'm' (BOOL) holds byte 2 at element 1, not 0 or 1");
  }
  SUBCASE("well-formed edge cases are accepted") {
    // Tensors listed out of data order, a zero-sized tensor at the start and at the end, a scalar.
    write_safetensors_by_hand(path,
                              obj({entry("b", "\"F32\"", "[]", "[8,12]"), entry("z", "\"U8\"", "[0,5]", "[12,12]"),
                                   entry("a", "\"I64\"", "[1]", "[0,8]"), entry("z0", "\"BOOL\"", "[0]", "[0,0]")}),
                              d12);
    nn::SafetensorsFile f = nn::load_safetensors(path);
    REQUIRE(f.tensors.size() == 4);
    CHECK(f.tensors[0].first == "b");
    CHECK(f.at("z").shape() == Shape{0, 5});
    CHECK(f.at("b").shape() == Shape{});
    CHECK(f.at("a").item<int64_t>() == 0);
  }
  // Not a regular file: a folder, and a FIFO, which open() would wait on for a writer (began train --resume hung
  // on one named like a checkpoint).
  std::filesystem::create_directory(dir.file("folder.safetensors"));
  check_throws_with([&] { nn::load_safetensors(dir.file("folder.safetensors")); }, {"not a regular file"});
  REQUIRE(::mkfifo(dir.file("fifo.safetensors").c_str(), 0644) == 0);
  check_throws_with([&] { nn::load_safetensors(dir.file("fifo.safetensors")); }, {"not a regular file"});
}

TEST_CASE("checkpoint: writes are atomic: a failed write leaves no temporary file and the old checkpoint intact") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  nn::save_safetensors(path, {{"w", tensor({1, 2, 3})}});
  const std::string old_bytes = read_bytes(path);
  CHECK(dir.list() == std::set<std::string>{"model.safetensors"});

  SUBCASE("into a directory that does not exist") {
    const std::string nowhere = dir.file("no/such/dir/model.safetensors");
    check_throws_with(
        [&] {
          nn::save_safetensors(nowhere, {{"w", ones({4})}});
        },
        {nowhere, "cannot create the temporary file", "No such file or directory"});
  }
  SUBCASE("the disk fills up mid-write (a file size limit makes write() fail)") {
    // RLIMIT_FSIZE makes write() fail with EFBIG once the temporary file reaches 4 KiB, far into the data.
    struct sigaction ignore {
    }, old_action{};
    ignore.sa_handler = SIG_IGN;
    REQUIRE(::sigaction(SIGXFSZ, &ignore, &old_action) == 0);
    rlimit old_limit{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    rlimit small = old_limit;
    small.rlim_cur = 4096;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    bool threw = false;
    std::string message;
    try {
      nn::save_safetensors(path, {{"big", zeros({1 << 16})}});
    } catch (const Error& e) {
      threw = true;
      message = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &old_limit);
    ::sigaction(SIGXFSZ, &old_action, nullptr);
    CHECK(threw);
    INFO(message);
    CHECK(message.find(path) != std::string::npos);
    CHECK(message.find("cannot write the temporary file") != std::string::npos);
    CHECK(message.find("File too large") != std::string::npos);
  }
  SUBCASE("the rename fails (the target is a non-empty directory)") {
    const std::string target = dir.file("occupied");
    std::filesystem::create_directory(target);
    write_bytes(target + "/keep", "x");
    check_throws_with([&] { nn::save_safetensors(target, {{"w", ones({4})}}); }, {target, "cannot rename"});
    std::filesystem::remove_all(target);
  }
  // Whatever failed: the old checkpoint is untouched and nothing else was left behind.
  CHECK(read_bytes(path) == old_bytes);
  CHECK(dir.list() == std::set<std::string>{"model.safetensors"});
  CHECK(nn::load_safetensors(path).at("w").to_vector<float>() == std::vector<float>{1, 2, 3});

  // A successful write replaces it, also for a path without a directory part.
  nn::save_safetensors(path, {{"w", tensor({4, 5})}});
  CHECK(nn::load_safetensors(path).at("w").to_vector<float>() == std::vector<float>{4, 5});
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path);
  nn::save_safetensors("bare.safetensors", {{"v", ones({1})}});
  std::filesystem::current_path(cwd);
  CHECK(dir.list() == std::set<std::string>{"bare.safetensors", "model.safetensors"});
}

TEST_CASE("checkpoint: a model and its optimiser round trip, outputs and later steps bit for bit") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  auto make_model = [] {
    return std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::ELU>(),
                                            std::make_shared<nn::Linear>(8, 3));
  };
  manual_seed(1);
  auto model = make_model();
  nn::Adam opt(model->parameters(), 1e-2);
  Tensor x = randn({5, 4}), y = randn({5, 3});
  auto train_step = [&](nn::Sequential& m, nn::Optimizer& o) {
    Tensor loss = mse_loss(m.forward(x), y);
    o.zero_grad();
    loss.backward();
    o.step();
  };
  for (int i = 0; i < 3; ++i) train_step(*model, opt);
  nn::save_checkpoint(path, *model, &opt, {{"step", "3"}});

  manual_seed(99);  // different initial weights
  auto restored = make_model();
  nn::Adam restored_opt(restored->parameters(), 1e-2);
  auto meta = nn::load_checkpoint(path, *restored, &restored_opt);
  CHECK(meta.at("step") == "3");
  {
    NoGradGuard no_grad;
    check_bit_identical(restored->forward(x), model->forward(x));
  }
  // The optimiser state came along: one more step on each gives identical weights.
  train_step(*model, opt);
  train_step(*restored, restored_opt);
  auto a = model->state_dict(), b = restored->state_dict();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) check_bit_identical(b[i].second, a[i].second);

  // Weights only: "optim." entries are ignored without an optimiser.
  auto weights_only = make_model();
  nn::load_checkpoint(path, *weights_only);
  CHECK(nn::load_safetensors(path).at("model.0.weight").shape() == Shape{8, 4});
}

TEST_CASE("checkpoint: loading into a different model reports every mismatched name at once and changes nothing") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  manual_seed(3);
  auto saved = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::ELU>(),
                                                std::make_shared<nn::Linear>(8, 3));
  nn::save_checkpoint(path, *saved);

  // 0.weight mis-shaped, 2.* missing, 1.* unexpected... rather: a model with a different layout.
  auto other = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(5, 8), std::make_shared<nn::Linear>(8, 3));
  const NamedTensors before = other->state_dict();
  std::vector<std::string> before_bytes;
  for (const auto& [n, t] : before) before_bytes.push_back(tensor_bytes(t));
  try {
    nn::load_checkpoint(path, *other);
    FAIL("expected an atelier::Error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("0.weight") != std::string::npos);  // mis-shaped (8, 4) vs (8, 5)
    CHECK(msg.find("1.weight") != std::string::npos);  // missing
    CHECK(msg.find("2.weight") != std::string::npos);  // unexpected
    CHECK(msg.find("2.bias") != std::string::npos);
  }
  const NamedTensors after = other->state_dict();
  for (size_t i = 0; i < after.size(); ++i) CHECK(tensor_bytes(after[i].second) == before_bytes[i]);

  // An optimiser mismatch undoes the model's load: all or nothing.
  auto same = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::ELU>(),
                                               std::make_shared<nn::Linear>(8, 3));
  const std::string same_before = tensor_bytes(same->state_dict()[0].second);
  nn::SGD sgd(same->parameters(), 0.1);
  check_throws_with([&] { nn::load_checkpoint(path, *same, &sgd); }, {path, "the optimizer does not match"});
  CHECK(tensor_bytes(same->state_dict()[0].second) == same_before);

  // Tensors with neither prefix.
  nn::save_safetensors(path, {{"model.0.weight", ones({8, 4})}, {"stray", ones({1})}});
  check_throws_with([&] { nn::load_checkpoint(path, *same); }, {path, "'stray'"});
}

TEST_CASE("checkpoint: interop file for bench/peers/check_safetensors.py") {
  // A small CNN, its input and its output in one file. bench/peers/check_safetensors.py rebuilds the model in
  // PyTorch from the "architecture" metadata and the "model." tensors, runs it on "input" and compares with
  // "output". Set ATELIER_INTEROP_OUT to keep the file (docs/results.md records the run).
  TempDir dir;
  const char* out_env = std::getenv("ATELIER_INTEROP_OUT");
  const std::string path = out_env ? std::string(out_env) : dir.file("interop.safetensors");
  manual_seed(2024);
  auto model = std::make_shared<nn::Sequential>(
      std::make_shared<nn::Conv2d>(1, 4, 3, 1, 1), std::make_shared<nn::ELU>(),
      std::make_shared<nn::Conv2d>(4, 8, 3, 2, 1), std::make_shared<nn::ELU>(),
      std::make_shared<nn::UpsampleNearest2d>(2), std::make_shared<nn::Conv2d>(8, 4, 3, 2, 1),
      std::make_shared<nn::Tanh>(), std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(4 * 4 * 4, 10));
  const std::string architecture =
      "conv2d(1,4,3,1,1) elu conv2d(4,8,3,2,1) elu upsample(2) conv2d(8,4,3,2,1) tanh flatten linear(64,10)";
  Tensor input = uniform({3, 1, 8, 8}, -1, 1);
  Tensor output;
  {
    NoGradGuard no_grad;
    output = model->forward(input);
  }
  REQUIRE(output.shape() == Shape{3, 10});
  NamedTensors all;
  for (auto& [n, t] : model->state_dict()) all.emplace_back("model." + n, t);
  all.emplace_back("input", input);
  all.emplace_back("output", output);
  nn::save_safetensors(path, all, {{"architecture", architecture}, {"format", "atelier-interop-1"}});
  nn::SafetensorsFile file = nn::load_safetensors(path);
  check_bit_identical(file.at("output"), output);
  check_bit_identical(file.at("model.5.weight"), model->state_dict()[4].second);
}

TEST_CASE("checkpoint: the reader refuses deep nesting and NUL bytes, and quotes hostile values briefly") {
  TempDir dir;
  const std::string path = dir.file("hostile.safetensors");
  // Loading must throw an Error naming the file and `phrase`, with a message of bounded length.
  auto refuses = [&](const std::string& header, const std::string& phrase) {
    write_safetensors_by_hand(path, header, "");
    std::string message;
    try {
      nn::load_safetensors(path);
    } catch (const Error& e) {
      message = e.what();
    }
    INFO(message.substr(0, 400));
    CHECK(message.find(path) != std::string::npos);
    CHECK(message.find(phrase) != std::string::npos);
    CHECK(message.size() < 600);
  };
  const std::string deep(100'000, '['), undeep(100'000, ']');
  // "shape" nested 100,000 levels (a 200 kB header): refused while parsing, before anything recurses over it.
  refuses(R"({"x":{"dtype":"F32","shape":)" + deep + undeep + R"(,"data_offsets":[0,0]}})",
          "nests JSON more than 64 levels deep");
  // The same in an unknown field (which the reader otherwise ignores) and in the metadata.
  refuses(R"({"x":{"dtype":"F32","shape":[],"data_offsets":[0,4],"extra":)" + deep + undeep + "}}",
          "more than 64 levels");
  refuses(R"({"__metadata__":{"k":)" + std::string(50'000, '[') + std::string(50'000, ']') + "}}",
          "more than 64 levels");
  // 64 levels is the limit: a header 10 deep with an unknown field still loads.
  write_safetensors_by_hand(path, R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"e":[[[[[[[[1]]]]]]]]}})",
                            "\x07");
  CHECK(nn::load_safetensors(path).at("x").to_vector<uint8_t>() == std::vector<uint8_t>{7});

  // A NUL byte ends no JSON text: refused wherever it is, with garbage after it or padding.
  const std::string good = R"({"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}})";
  refuses(good + std::string(1, '\0') + "garbage", "NUL byte at offset 53");
  refuses(good + std::string(1, '\0') + "   ", "NUL byte");
  refuses(R"({"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0)" + std::string(1, '\0') + "]}}", "NUL byte");

  // Megabyte values and names are quoted cut short, saying how long they were.
  const std::string huge(1'000'000, 'a');
  refuses(R"({"x":{"dtype":"F32","shape":[")" + huge + R"("],"data_offsets":[0,0]}})", "(1000002 characters)");
  refuses(R"({")" + huge + R"(":{"dtype":"F17","shape":[],"data_offsets":[0,0]}})", "(1000000 characters)");
  refuses(R"({"x":{"dtype":")" + huge + R"(","shape":[],"data_offsets":[0,0]}})", "unknown dtype");
  refuses(R"({"__metadata__":{"k":[")" + huge + R"("]}})", "is not a string");
  std::string many_dims = "[";
  for (int i = 0; i < 100'000; ++i) many_dims += (i ? ",1" : "1");
  refuses(R"({"x":{"dtype":"F32","shape":)" + many_dims + R"(],"data_offsets":[0,0]}})", "characters)");
}

TEST_CASE("checkpoint: any legal file name saves, and temporary files left by killed saves are removed") {
  TempDir dir;
  // NAME_MAX (255 bytes) is legal; a suffix added to it for the temporary file would not be.
  const std::string longest = dir.file(std::string(255 - 12, 'n') + ".safetensors");
  nn::save_safetensors(longest, {{"w", tensor({1, 2})}});
  CHECK(nn::load_safetensors(longest).at("w").to_vector<float>() == std::vector<float>{1, 2});
  std::filesystem::remove(longest);

  // A dead process's temporary file (a child that has exited and been reaped), a live process's (this test's
  // parent, whose save could be in progress) and a file that only looks similar.
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  const std::string dead = ".atelier-tmp." + std::to_string(child) + ".3";
  const std::string live = ".atelier-tmp." + std::to_string(::getppid()) + ".0";
  for (const std::string& name : {dead, live, std::string(".atelier-tmp.notapid"), std::string("keep.tmp.1.2")}) {
    write_bytes(dir.file(name), "half a checkpoint");
  }
  nn::save_safetensors(dir.file("model.safetensors"), {{"w", ones({3})}});
  CHECK(dir.list() == std::set<std::string>{"model.safetensors", live, ".atelier-tmp.notapid", "keep.tmp.1.2"});
  // A save into another directory leaves this one alone.
  write_bytes(dir.file(dead), "half a checkpoint");
  TempDir other;
  nn::save_safetensors(other.file("m.safetensors"), {{"w", ones({1})}});
  CHECK(dir.list().count(dead) == 1);
}

TEST_CASE("checkpoint: optimiser numbers from a file are range-checked before any cast (found by fuzz_checkpoint)") {
  // A saved Adam state whose "kind" or "step" a hostile file sets to values no int holds: each is refused with a
  // short message and the optimiser is unchanged (casting them unchecked was undefined behaviour).
  auto model = std::make_shared<nn::Linear>(2, 1);
  nn::Adam opt(model->parameters(), 1e-3);
  mse_loss(model->forward(ones({3, 2})), zeros({3, 1})).backward();
  opt.step();
  const NamedTensors good = opt.state_dict();
  auto with = [&](const std::string& key, double value) {
    NamedTensors s;
    for (const auto& [name, t] : good) {
      s.emplace_back(name, name == key ? scalar_tensor(value, t.dtype()) : t.clone());
    }
    return s;
  };
  for (double kind : {4.27256e180, -1e300, std::nan(""), 2.5, 7.0}) {
    INFO("kind " << kind);
    check_throws_with([&] { opt.load_state_dict(with("param_groups.kind", kind)); }, {"an unknown optimiser"});
  }
  for (double step : {9.2e18, -5.0, 0.0}) {  // an I64 tensor: near 2^63 is where the old cast broke
    INFO("step " << step);
    std::string message;
    try {
      opt.load_state_dict(with("state.0.step", step));
    } catch (const Error& e) {
      message = e.what();
    }
    CHECK(message.find("state.0.step (expected a whole number from 1 to 2^53") != std::string::npos);
    CHECK(message.size() < 400);
  }
  // The state is untouched: it still saves what it saved before.
  const NamedTensors after = opt.state_dict();
  REQUIRE(after.size() == good.size());
  for (size_t i = 0; i < good.size(); ++i) CHECK(tensor_bytes(after[i].second) == tensor_bytes(good[i].second));
}
