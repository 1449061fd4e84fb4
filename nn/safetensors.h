// The safetensors codec, the file format PyTorch, JAX and the Hugging Face tools read: an 8-byte little-endian
// header length N, N bytes of JSON (an object), then the raw tensor bytes.
//
//   {"__metadata__": {"step": "1200"},
//    "fc.weight": {"dtype": "F32", "shape": [10, 784], "data_offsets": [0, 31360]}, ...}
//
// data_offsets are [begin, end) from the first byte after the header; together they cover the data exactly, with
// no hole and no overlap. Data is little-endian and row-major; a shape of [] (a scalar) and zero-sized dimensions
// are valid. atelier reads and writes F32, F64, I64, U8 and BOOL (its own dtypes); a file holding any other
// safetensors dtype is refused, naming the dtype and the tensor. Every error names the file.
//
// This file moves named tensors and string metadata; nn/checkpoint.h stores a Module and an Optimizer with it.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace atelier::nn {

// Names and tensors, in order (the same alias as nn/module.h's). Names are unique; "__metadata__" is reserved.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Writes `tensors` (any device, any strides: each is made contiguous and copied to the host) and `metadata` to
// `path`, atomically: the bytes go to a temporary file in the same directory (".atelier-tmp.<pid>.<n>", short,
// so that any legal file name can be saved), which is fsynced, renamed over `path`, and the directory fsynced. A
// crash or error at any point leaves either the old file or the complete new one, never a partial file; on error
// the temporary file is removed. A save that was killed leaves its temporary file behind: each save first removes
// those of processes no longer running from the directory it writes into.
//
// The header lists "__metadata__" first (when not empty), then the tensors in the order given, with their data
// laid out in that same order; it is padded with spaces so that 8 + N is a multiple of 8 (each tensor's data then
// starts 8-byte aligned in the file, as the safetensors library does).
//
// Requires: unique, non-empty, valid UTF-8 names, none "__metadata__"; defined tensors; UTF-8 metadata.
// Throws atelier::Error naming the path and the fault (with the errno text for I/O failures).
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Writes `bytes` to `path` the same way, atomically (a short temporary name beside it, fsynced, renamed over
// `path`, the directory fsynced; temporary files of dead processes removed first). `where` starts every message.
// BEGAN's sample grids, reports and run files go through it.
void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& where);

struct SafetensorsFile {
  NamedTensors tensors;  // in header order; each a fresh contiguous CPU tensor
  std::map<std::string, std::string> metadata;

  // The tensor called `name`; throws naming the name when absent.
  const Tensor& at(const std::string& name) const;
};

// Reads a safetensors file, with or without header padding. Rejects, naming the file and where relevant the
// tensor: a file shorter than 8 bytes; a header over 100 MB or running past the end of the file; JSON that is
// invalid or not an object; a duplicate key at any level; a missing or mistyped field (dtype a string, shape an
// array of non-negative integers, data_offsets two non-negative integers); "__metadata__" that is not an object of
// strings; a dtype outside the spec, or a spec dtype atelier does not support; a byte length other than numel x
// element size (with overflow checks); offsets out of range, with holes or overlapping, or not covering the data
// exactly; BOOL bytes other than 0 and 1; a NUL byte in the header; JSON nested more than 64 levels deep (a valid
// header needs 3). Unknown fields in a tensor entry are ignored, as the reference reader does. Names and values
// quoted in messages are cut to 80 characters.
SafetensorsFile load_safetensors(const std::string& path);

// A file's metadata for a person to read, to say what a file holds when it is not what was asked for: "key value"
// pairs joined by ", " in key order, the first 6 ("... and N more"), each value cut to 24 characters; "none" when
// there is none.
std::string metadata_summary(const std::map<std::string, std::string>& metadata);

}  // namespace atelier::nn
