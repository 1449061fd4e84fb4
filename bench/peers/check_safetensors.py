#!/usr/bin/env python3
"""Checkpoint interop: loads a safetensors file written by atelier into the equivalent PyTorch model and compares
outputs. The file is read with json + struct only (no safetensors package), so this also checks that atelier's
files follow the format byte for byte.

The file (written by the test "checkpoint: interop file for bench/peers/check_safetensors.py") holds
    model.<i>.weight / model.<i>.bias   the parameters of an nn::Sequential (PyTorch names and layouts)
    input, output                       a batch and atelier's output on it
    __metadata__.architecture           the layers in order, e.g.
                                        "conv2d(1,4,3,1,1) elu upsample(2) flatten linear(64,10)"
                                        conv2d(in, out, kernel, stride, padding), linear(in, out), upsample(scale)

Run by hand (never in CI), from the repository root:
    ATELIER_INTEROP_OUT=/tmp/interop.safetensors build/cpu/bin/atelier_tests -tc='checkpoint: interop*'
    ${PYTHON:-/usr/bin/python3} bench/peers/check_safetensors.py /tmp/interop.safetensors

Prints the largest |torch - atelier| over the output and exits non-zero when it exceeds the tolerance (float32
parity: 1e-5 (1 + |atelier|) per element, the tolerance docs/results.md records).
"""
import json
import re
import struct
import sys

try:
    import torch
except ImportError:
    sys.exit("check_safetensors.py: PyTorch is not installed for %s (scripts/torch-venv.sh makes an environment "
             "with it; Debian: apt-get install python3-torch)" % sys.executable)

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "U8": torch.uint8, "BOOL": torch.bool}
ELEMENT_SIZE = {"F32": 4, "F64": 8, "I64": 8, "U8": 1, "BOOL": 1}


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate keys in {keys}")
    return dict(pairs)


def read_safetensors(path):
    """Returns ({name: tensor}, metadata), checking the layout nn/safetensors.h describes."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > 100_000_000 or 8 + n > len(blob):
        raise ValueError(f"{path}: bad header length {n}")
    header_bytes = blob[8 : 8 + n]
    if header_bytes[:1] != b"{":
        raise ValueError(f"{path}: header does not start with '{{'")
    if (8 + n) % 8 != 0:
        print(f"note: {path}: header not padded to a multiple of 8 (allowed, but atelier pads)")
    header = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=no_duplicates)
    metadata = header.pop("__metadata__", {})
    data = blob[8 + n :]
    tensors, spans = {}, []
    for name, info in header.items():
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        numel = 1
        for d in shape:
            numel *= d
        if end - begin != numel * ELEMENT_SIZE[dtype]:
            raise ValueError(f"{path}: tensor {name!r}: {end - begin} bytes for shape {shape} of {dtype}")
        spans.append((begin, end, name))
        raw = bytearray(data[begin:end])
        t = torch.frombuffer(raw, dtype=DTYPES[dtype]) if raw else torch.empty(0, dtype=DTYPES[dtype])
        tensors[name] = t.reshape(shape)
    cursor = 0
    for begin, end, name in sorted(spans):
        if begin != cursor:
            raise ValueError(f"{path}: tensor {name!r} starts at {begin}, expected {cursor} (hole or overlap)")
        cursor = end
    if cursor != len(data):
        raise ValueError(f"{path}: data is {len(data)} bytes, tensors cover {cursor}")
    return tensors, metadata


def build_model(architecture):
    """A torch.nn.Sequential from the architecture string; child i is layer i, as in atelier's nn::Sequential."""
    layers = []
    for token in architecture.split():
        m = re.fullmatch(r"(\w+)(?:\(([\d,]*)\))?", token)
        if not m:
            raise ValueError(f"bad layer {token!r}")
        kind, args = m.group(1), [int(a) for a in (m.group(2) or "").split(",") if a]
        if kind == "conv2d":
            c_in, c_out, k, stride, padding = args
            layers.append(torch.nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding))
        elif kind == "linear":
            layers.append(torch.nn.Linear(*args))
        elif kind == "upsample":
            layers.append(torch.nn.Upsample(scale_factor=args[0], mode="nearest"))
        elif kind == "flatten":
            layers.append(torch.nn.Flatten())
        else:
            layers.append({"elu": torch.nn.ELU, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
                           "sigmoid": torch.nn.Sigmoid}[kind]())
    return torch.nn.Sequential(*layers)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    torch.set_num_threads(1)
    tensors, metadata = read_safetensors(path)
    model = build_model(metadata["architecture"])
    state = {name[len("model."):]: t for name, t in tensors.items() if name.startswith("model.")}
    model.load_state_dict(state, strict=True)  # every name and shape must match PyTorch's
    with torch.no_grad():
        got = model(tensors["input"])
    want = tensors["output"]
    diff = (got - want).abs()
    worst = float(diff.max())
    bound = float((1e-5 * (1 + want.abs())).min())
    ok = bool((diff <= 1e-5 * (1 + want.abs())).all())
    print(f"file: {path}")
    print(f"architecture: {metadata['architecture']}")
    print(f"parameters: {len(state)} tensors, {sum(t.numel() for t in state.values())} values; "
          f"input {tuple(tensors['input'].shape)}, output {tuple(want.shape)}")
    print(f"max |torch - atelier| = {worst:.3e}  (tolerance 1e-5 (1 + |atelier|), at least {bound:.1e})")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
