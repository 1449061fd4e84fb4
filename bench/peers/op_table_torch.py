#!/usr/bin/env python3
"""PyTorch twin of bench/bench_op_table.cpp: rows of atelier's op table, same names, shapes and functions.

What both sides time is the framework around tiny kernels: one row's forward with the graph recorded
(op_table/ROW/forward), and that forward then backward into the inputs' .grad, cleared first
(op_table/ROW/backward), in float32 on the CPU. The rows are a cross-section of autograd/op_table.cpp: maps,
broadcasting, scalars, reductions, matmul, linear, convolution, upsampling, cat and the losses; each lambda below
is the row's expression written in PyTorch (the inputs are random: at these sizes the values do not matter).

Prints JSON as bench/peers/ops_torch.py does ({"context", "benchmarks": [{"name", "ms", "reps", "iters"}]}), the
median over `--repetitions` of the mean time per iteration after a warm-up. Run by
`scripts/bench-vs-torch.sh --op-table`, or by hand:

    ATELIER_NUM_THREADS=1 $PYTHON bench/peers/op_table_torch.py [--filter REGEX]
"""
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("op_table_torch.py: PyTorch is not installed for %s (scripts/torch-venv.sh makes an environment with "
             "it; Debian: apt-get install python3-torch)" % sys.executable)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops_torch import parse_arguments, time_cases, write_results  # noqa: E402  (the op peers' shared code)


def leaf(*shape):
    return torch.rand(*shape).mul_(2).sub_(1).requires_grad_(True)


# name, the input makers, the row's expression (as in autograd/op_table.cpp).
ROWS = [
    ("add/same_shape", lambda: [leaf(2, 3), leaf(2, 3)], lambda x: x[0] + x[1]),
    ("add/broadcast", lambda: [leaf(3, 1, 4), leaf(2, 4)], lambda x: x[0] + x[1]),
    ("add/scalar", lambda: [leaf(5)], lambda x: 2.5 + x[0]),
    ("mul/broadcast", lambda: [leaf(2, 3), leaf(2, 1)], lambda x: x[0] * x[1]),
    ("mul/scalar", lambda: [leaf(3)], lambda x: x[0] * -3.0),
    ("mul/sliced", lambda: [leaf(4, 6), leaf(2, 3)], lambda x: x[0][1:3, 0:6:2] * x[1]),
    ("exp", lambda: [leaf(2, 3)], lambda x: torch.exp(x[0])),
    ("tanh", lambda: [leaf(2, 3)], lambda x: torch.tanh(x[0])),
    ("elu/alpha1", lambda: [leaf(3, 3)], lambda x: F.elu(x[0])),
    ("sum/all", lambda: [leaf(2, 3, 4)], lambda x: x[0].sum()),
    ("sum/dim1", lambda: [leaf(2, 3, 4)], lambda x: x[0].sum(1)),
    ("mean/all", lambda: [leaf(3, 4)], lambda x: x[0].mean()),
    ("matmul/2d", lambda: [leaf(3, 4), leaf(4, 5)], lambda x: torch.matmul(x[0], x[1])),
    ("matmul/batched", lambda: [leaf(2, 3, 4), leaf(2, 4, 5)], lambda x: torch.matmul(x[0], x[1])),
    ("linear/bias", lambda: [leaf(4, 3), leaf(2, 3), leaf(2)], lambda x: F.linear(x[0], x[1], x[2])),
    ("reshape", lambda: [leaf(2, 6)], lambda x: x[0].reshape(3, -1) * x[0].reshape(3, 4)),
    ("permute", lambda: [leaf(2, 3, 4)], lambda x: x[0].permute(2, 0, 1).contiguous()),
    ("conv2d/3x3_pad1_bias_batch1", lambda: [leaf(1, 2, 5, 7), leaf(3, 2, 3, 3), leaf(3)],
     lambda x: F.conv2d(x[0], x[1], x[2], 1, 1)),
    ("conv2d/3x3_stride2_pad1_bias_batch3", lambda: [leaf(3, 2, 5, 7), leaf(4, 2, 3, 3), leaf(4)],
     lambda x: F.conv2d(x[0], x[1], x[2], 2, 1)),
    ("conv2d_elu/3x3_pad1_bias_batch2", lambda: [leaf(2, 3, 6, 5), leaf(4, 3, 3, 3), leaf(4)],
     lambda x: F.elu(F.conv2d(x[0], x[1], x[2], 1, 1))),
    ("upsample_nearest2d/scale2", lambda: [leaf(2, 3, 3, 4)],
     lambda x: F.interpolate(x[0], scale_factor=2, mode="nearest")),
    ("cat/dim0_three", lambda: [leaf(2, 3), leaf(1, 3), leaf(3, 3)], lambda x: torch.cat([x[0], x[1], x[2]], 0)),
    ("mse_loss", lambda: [leaf(3, 4), leaf(3, 4)], lambda x: F.mse_loss(x[0], x[1])),
    ("l1_loss", lambda: [leaf(2, 5), torch.zeros(2, 5, requires_grad=True)], lambda x: F.l1_loss(x[0], x[1])),
    ("log_softmax/dim1", lambda: [leaf(3, 5)], lambda x: F.log_softmax(x[0], 1)),
    ("cross_entropy", lambda: [leaf(4, 3), torch.tensor([0, 2, 1, 2])], lambda x: F.cross_entropy(x[0], x[1])),
    ("softmax/dim1", lambda: [leaf(3, 5)], lambda x: F.softmax(x[0], 1)),
    ("binary_cross_entropy_with_logits", lambda: [leaf(3, 4), leaf(3, 4)],
     lambda x: F.binary_cross_entropy_with_logits(x[0], x[1])),
]


def forward_fn(inputs, expression):
    return lambda: expression(inputs)


def backward_fn(inputs, expression):
    seed = torch.ones_like(expression(inputs))

    def run():
        for t in inputs:
            t.grad = None
        expression(inputs).backward(seed)

    return run


def cases():
    """(name, make) for each row and kind, as ops_torch.py's cases()."""
    out = []
    for row, make, expression in ROWS:
        out.append(("op_table/%s/forward" % row, lambda m=make, e=expression: forward_fn(m(), e)))
        out.append(("op_table/%s/backward" % row, lambda m=make, e=expression: backward_fn(m(), e)))
    return out


def main():
    args = parse_arguments(__doc__.splitlines()[0], "op_table_torch.py")
    if args.list:  # the row names (scripts/bench-vs-torch.sh --op-table builds its default filter from them)
        print("\n".join(row for row, _, _ in ROWS))
        return
    write_results(args, time_cases(args, cases()))


if __name__ == "__main__":
    main()
