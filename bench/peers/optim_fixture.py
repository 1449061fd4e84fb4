#!/usr/bin/env python3
"""Golden values for atelier's optimisers: three steps of torch.optim.SGD / Adam / AdamW on one 2x3 float64
parameter with fixed gradients, written to tests/fixtures/optim_fixture.txt for tests/test_optim.cpp.

Run by hand (never in CI), from the repository root:
    ${PYTHON:-/usr/bin/python3} bench/peers/optim_fixture.py

File format (plain text): lines starting with '#' are comments; every other line is
    <name> <count> <value> ... <value>
with values in row-major order and 17 significant digits (enough to round-trip a float64). The initial
parameter and the three gradients are in the file too, so the C++ test reads its inputs from here as well.
"""
import os
import sys

try:
    import torch
except ImportError:
    sys.exit("optim_fixture.py: PyTorch is not installed for %s (scripts/torch-venv.sh makes an environment "
             "with it; Debian: apt-get install python3-torch)" % sys.executable)

INITIAL = [[0.5, -1.25, 2.0], [-0.75, 1.5, -3.0]]
# One gradient per step; signs and magnitudes vary, and one element is exactly 0 at step 2.
GRADS = [
    [[0.1, -0.2, 0.3], [-0.4, 0.5, -0.6]],
    [[-0.25, 0.0, 0.75], [1.5, -0.125, 0.0625]],
    [[0.3, 0.3, -0.9], [0.05, -2.0, 1.25]],
]

# name -> (constructor, keyword arguments); the C++ test uses the same hyperparameters.
CONFIGS = {
    "sgd": (torch.optim.SGD, dict(lr=0.1)),
    "sgd_momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    "sgd_dampening": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.5)),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)),
    "adam": (torch.optim.Adam, dict(lr=0.1, betas=(0.5, 0.999), eps=1e-8, weight_decay=0.01)),
    "adamw": (torch.optim.AdamW, dict(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)),
}


def fmt(name, tensor):
    values = tensor.detach().reshape(-1).tolist()
    return f"{name} {len(values)} " + " ".join(f"{v:.17g}" for v in values)


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out_path = os.path.join(root, "tests", "fixtures", "optim_fixture.txt")
    lines = [
        "# Written by bench/peers/optim_fixture.py with torch " + torch.__version__ + "; do not edit by hand.",
        "# Hyperparameters: " + "; ".join(f"{k}: {v[0].__name__}{v[1]}" for k, v in CONFIGS.items()),
        fmt("initial", torch.tensor(INITIAL, dtype=torch.float64)),
    ]
    for i, g in enumerate(GRADS):
        lines.append(fmt(f"grad.{i + 1}", torch.tensor(g, dtype=torch.float64)))
    for name, (ctor, kwargs) in CONFIGS.items():
        p = torch.tensor(INITIAL, dtype=torch.float64, requires_grad=True)
        opt = ctor([p], **kwargs)
        for i, g in enumerate(GRADS):
            p.grad = torch.tensor(g, dtype=torch.float64)
            opt.step()
            lines.append(fmt(f"{name}.step{i + 1}", p))
        state = opt.state[p]
        for key in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
            if state.get(key) is not None:
                lines.append(fmt(f"{name}.{key}", state[key]))
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
