#!/usr/bin/env python3
"""PyTorch twin of bench/bench_ops.cpp: the same ops, shapes and names, timed the same way.

Prints JSON: {"context": {...}, "benchmarks": [{"name", "ms", "reps", "iters"}, ...]}, where ms is the median over
`--repetitions` of the mean time per iteration, after a warm-up of at least `--warmup-time` seconds (and two
calls). Run by scripts/bench-vs-torch.sh (which also sets the malloc tunables of both sides), or by hand:

    ATELIER_NUM_THREADS=2 $PYTHON bench/peers/ops_torch.py [--filter REGEX]

with $PYTHON the interpreter of scripts/torch-venv.sh's environment (PyTorch from PyPI; Debian's 1.13 also runs).
Threads: torch.set_num_threads(--threads, default ATELIER_NUM_THREADS, else all cores, as atelier). oneDNN
(mkldnn) stays at its default (on). Forward passes run under torch.no_grad(); the conv gradients call
torch.ops.aten.convolution_backward, the op autograd itself calls, with real input and weight tensors.
"""
import argparse
import json
import os
import platform
import re
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("ops_torch.py: PyTorch is not installed for %s (scripts/torch-venv.sh makes an environment with it; "
             "Debian: apt-get install python3-torch)" % sys.executable)


def gemm_cases():
    # name, m, k, n, A stored transposed, B stored transposed (as in bench_ops.cpp)
    return [
        ("gemm/1024x1024x1024", 1024, 1024, 1024, False, False),
        ("gemm/im2col_fwd_64x576x4096", 64, 576, 4096, False, False),
        ("gemm/im2col_bwd_input_576x64x4096", 576, 64, 4096, True, False),
        ("gemm/im2col_bwd_weight_64x4096x576", 64, 4096, 576, False, True),
    ]


def make_gemm(m, k, n, trans_a, trans_b):
    a = torch.randn(k, m).t() if trans_a else torch.randn(m, k)
    b = torch.randn(n, k).t() if trans_b else torch.randn(k, n)
    return lambda: torch.matmul(a, b)


# (n, c_in, h, w, c_out, stride); 3x3, padding 1, no bias.
CONVS = [
    (16, 64, 64, 64, 64, 1),
    (16, 128, 32, 32, 128, 1),
    (16, 192, 16, 16, 192, 1),
    (16, 64, 64, 64, 128, 2),
    (16, 128, 32, 32, 192, 2),
    (16, 192, 16, 16, 256, 2),
]


def conv_name(n, c_in, h, w, c_out, stride):
    return "conv/%dx%dx%dx%d->%d%s" % (n, c_in, h, w, c_out, "" if stride == 1 else "s%d" % stride)


def make_conv(n, c_in, h, w, c_out, stride, pass_):
    x = torch.randn(n, c_in, h, w)
    weight = torch.randn(c_out, c_in, 3, 3)
    h_out, w_out = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
    grad_out = torch.randn(n, c_out, h_out, w_out)
    geometry = ([stride, stride], [1, 1], [1, 1], False, [0, 0], 1)  # stride, padding, dilation, transposed, ...

    def fwd():
        return F.conv2d(x, weight, None, stride, 1)

    def bwd(mask):
        return torch.ops.aten.convolution_backward(grad_out, x, weight, None, *geometry, mask)

    if pass_ == "fwd":
        return fwd
    if pass_ == "bwd_input":
        return lambda: bwd((True, False, False))
    if pass_ == "bwd_weight":
        return lambda: bwd((False, True, False))
    # all3: the forward, then both gradients in one call, as autograd runs a training step.
    return lambda: (fwd(), bwd((True, True, False)))


def make_upsample(backward):
    small = torch.randn(16, 64, 32, 32)
    large = torch.randn(16, 64, 64, 64)
    if backward:
        return lambda: torch.ops.aten.upsample_nearest2d_backward(large, [64, 64], [16, 64, 32, 32], 2.0, 2.0)
    return lambda: F.interpolate(small, scale_factor=2, mode="nearest")


def make_l1_loss():
    target = torch.randn(16, 3, 64, 64)
    x = torch.randn(16, 3, 64, 64, requires_grad=True)

    def run():
        with torch.enable_grad():  # the timing loop runs under no_grad
            F.l1_loss(x, target).backward()
        x.grad = None

    return run


def make_log_softmax(rows, classes):
    logits = torch.randn(rows, classes, requires_grad=True)
    grad = torch.randn(rows, classes)

    def run():
        with torch.enable_grad():
            F.log_softmax(logits, 1).backward(grad)
        logits.grad = None

    return run


def general_cases():
    """bench_ops.cpp's general_cases(): (name, leaf shapes, lo, hi, op), forward then backward from ones."""
    m, half_rows, half_cols, image = (512, 2048), (256, 2048), (512, 1024), (16, 64, 32, 32)
    return [
        ("add", [m, m], -1, 1, lambda x: x[0] + x[1]),
        ("add/row_bias", [m, (2048,)], -1, 1, lambda x: x[0] + x[1]),
        ("add/column_bias", [m, (512, 1)], -1, 1, lambda x: x[0] + x[1]),
        ("mul", [m, m], -1, 1, lambda x: x[0] * x[1]),
        ("mul/scalar", [m], -1, 1, lambda x: x[0] * 3.0),
        ("div", [m, m], 1, 2, lambda x: x[0] / x[1]),
        ("exp", [m], -1, 1, lambda x: torch.exp(x[0])),
        ("log", [m], 0.5, 2, lambda x: torch.log(x[0])),
        ("sqrt", [m], 0.5, 2, lambda x: torch.sqrt(x[0])),
        ("pow2", [m], -1, 1, lambda x: torch.pow(x[0], 2.0)),
        ("abs", [m], -1, 1, lambda x: torch.abs(x[0])),
        ("tanh", [m], -1, 1, lambda x: torch.tanh(x[0])),
        ("sigmoid", [m], -1, 1, lambda x: torch.sigmoid(x[0])),
        ("softplus", [m], -4, 4, lambda x: F.softplus(x[0])),
        ("leaky_relu", [m], -1, 1, lambda x: F.leaky_relu(x[0])),
        ("silu", [m], -4, 4, lambda x: F.silu(x[0])),
        ("gelu", [m], -4, 4, lambda x: F.gelu(x[0])),
        ("gelu_tanh", [m], -4, 4, lambda x: F.gelu(x[0], approximate="tanh")),
        ("relu", [m], -1, 1, lambda x: F.relu(x[0])),
        ("elu", [m], -1, 1, lambda x: F.elu(x[0])),
        ("clamp", [m], -1, 1, lambda x: torch.clamp(x[0], -0.5, 0.5)),
        ("sum/all", [m], -1, 1, lambda x: x[0].sum()),
        ("sum/dim0", [m], -1, 1, lambda x: x[0].sum(0)),
        ("sum/dim1", [m], -1, 1, lambda x: x[0].sum(1)),
        ("mean/dim1", [m], -1, 1, lambda x: x[0].mean(1)),
        ("amax/dim0", [m], -1, 1, lambda x: x[0].amax(0)),
        ("amax/dim1", [m], -1, 1, lambda x: x[0].amax(1)),
        ("amin/dim1", [m], -1, 1, lambda x: x[0].amin(1)),
        ("var/dim1", [m], -1, 1, lambda x: x[0].var(1)),
        ("logsumexp/dim1", [m], -2, 2, lambda x: torch.logsumexp(x[0], 1)),
        ("maximum", [m, m], -1, 1, lambda x: torch.maximum(x[0], x[1])),
        ("matmul/512", [(512, 512), (512, 512)], -1, 1, lambda x: x[0] @ x[1]),
        ("linear/256x1024x1024", [(256, 1024), (1024, 1024), (1024,)], -1, 1, lambda x: F.linear(x[0], x[1], x[2])),
        ("transpose_contiguous", [m], -1, 1, lambda x: x[0].t().contiguous()),
        ("permute3d_contiguous", [(64, 128, 128)], -1, 1, lambda x: x[0].permute(2, 0, 1).contiguous()),
        ("cat/dim0", [half_rows, half_rows], -1, 1, lambda x: torch.cat([x[0], x[1]], 0)),
        ("stack/dim0", [half_rows, half_rows], -1, 1, lambda x: torch.stack([x[0], x[1]], 0)),
        ("cat/dim1", [half_cols, half_cols], -1, 1, lambda x: torch.cat([x[0], x[1]], 1)),
        ("slice_step2", [m], -1, 1, lambda x: x[0][:, 0:2048:2].contiguous()),
        ("mse_loss", [m, m], -1, 1, lambda x: F.mse_loss(x[0], x[1])),
        ("l1_loss", [m, m], -1, 1, lambda x: F.l1_loss(x[0], x[1])),
        ("bce_with_logits", [m, m], -1, 1, lambda x: F.binary_cross_entropy_with_logits(x[0], x[1])),
        ("softmax/dim1", [m], -2, 2, lambda x: F.softmax(x[0], 1)),
        ("to_float64", [m], -1, 1, lambda x: x[0].double()),
        ("dropout", [m], -1, 1, lambda x: F.dropout(x[0], 0.5, True)),
        ("batch_norm/nchw", [image, (64,), (64,)], -1, 1, lambda x: F.batch_norm(x[0], None, None, x[1], x[2], True)),
        ("batch_norm/nc", [(4096, 256), (256,), (256,)], -1, 1, lambda x: F.batch_norm(x[0], None, None, x[1], x[2], True)),
        ("group_norm/nchw_g32", [image, (64,), (64,)], -1, 1, lambda x: F.group_norm(x[0], 32, x[1], x[2])),
        ("group_norm/nc", [(4096, 256), (256,), (256,)], -1, 1, lambda x: F.group_norm(x[0], 32, x[1], x[2])),
        ("group_norm/nc16", [(1024, 64, 16), (64,), (64,)], -1, 1, lambda x: F.group_norm(x[0], 32, x[1], x[2])),

        ("layer_norm/dim1", [m, (2048,), (2048,)], -1, 1, lambda x: F.layer_norm(x[0], (2048,), x[1], x[2])),
        ("layer_norm/short", [(32768, 32), (32,), (32,)], -1, 1, lambda x: F.layer_norm(x[0], (32,), x[1], x[2])),
        ("max_pool2d/k2", [image], -1, 1, lambda x: F.max_pool2d(x[0], 2)),
        ("max_pool2d/k3_s2_p1", [image], -1, 1, lambda x: F.max_pool2d(x[0], 3, 2, 1)),
        ("avg_pool2d/k2", [image], -1, 1, lambda x: F.avg_pool2d(x[0], 2)),
    ]


def make_general(shapes, lo, hi, op):
    leaves = [torch.rand(*s).mul_(hi - lo).add_(lo).requires_grad_(True) for s in shapes]
    with torch.enable_grad():
        seed = torch.ones_like(op(leaves))

    def run():
        with torch.enable_grad():
            op(leaves).backward(seed)
        for leaf in leaves:
            leaf.grad = None

    return run


def adam_shapes():
    """The shapes of bench_ops.cpp's adam_shapes(): the 64x64 n=64 BEGAN encoder's convs and both fc layers."""
    shapes = []
    for c_in, c_out in [(3, 64), (64, 64), (64, 128), (128, 128), (128, 192), (192, 192), (192, 256), (256, 256),
                        (256, 256)]:
        shapes += [(c_out, c_in, 3, 3), (c_out,)]
    return shapes + [(64, 8 * 8 * 256), (64,), (8 * 8 * 64, 64)]


def make_adam():
    """torch.optim.Adam with its defaults on the CPU (what a user gets), betas (0.5, 0.999) as the BEGAN step."""
    params = []
    for shape in adam_shapes():
        p = torch.randn(*shape, requires_grad=True)
        p.grad = torch.randn(*shape)
        params.append(p)
    opt = torch.optim.Adam(params, lr=1e-4, betas=(0.5, 0.999))
    return opt.step


def cases():
    out = []
    for name, m, k, n, ta, tb in gemm_cases():
        out.append((name, lambda m=m, k=k, n=n, ta=ta, tb=tb: make_gemm(m, k, n, ta, tb)))
    for c in CONVS:
        for pass_ in ("fwd", "bwd_input", "bwd_weight", "all3"):
            out.append((conv_name(*c) + "/" + pass_, lambda c=c, p=pass_: make_conv(*c, p)))
    x = torch.randn(16, 64, 64, 64)
    out.append(("copy/16x64x64x64", lambda: (lambda: x.clone())))
    out.append(("elu/16x64x64x64", lambda: (lambda: F.elu(x))))
    out.append(("upsample/16x64x32x32/fwd", lambda: make_upsample(False)))
    out.append(("upsample/16x64x32x32/bwd", lambda: make_upsample(True)))
    y = F.elu(torch.randn(16, 64, 64, 64))
    dy = torch.randn(16, 64, 64, 64)
    # The kernel autograd calls for F.elu's backward, from the saved output (is_result=True), as atelier's.
    out.append(("elu_bwd/16x64x64x64", lambda: (lambda: torch.ops.aten.elu_backward(dy, 1.0, 1.0, 1.0, True, y))))
    out.append(("l1_loss/16x3x64x64/fwd_bwd", make_l1_loss))
    out.append(("log_softmax/256x1000/fwd_bwd", lambda: make_log_softmax(256, 1000)))
    out.append(("log_softmax/4096x10/fwd_bwd", lambda: make_log_softmax(4096, 10)))
    for name, shapes, lo, hi, op in general_cases():
        out.append(("general/%s/fwd_bwd" % name, lambda s=shapes, lo=lo, hi=hi, op=op: make_general(s, lo, hi, op)))
    l1 = torch.randn(16, 3, 64, 64)
    l1_pair = torch.randn(2, 16 * 3 * 64 * 64)
    out.append(("reduce/mean/16x3x64x64_into_1", lambda: (lambda: l1.mean())))
    out.append(("reduce/mean/2x16x3x64x64_into_2", lambda: (lambda: l1_pair.mean(dim=1))))
    out.append(("reduce/sum/16x64x64x64_into_64", lambda: (lambda: x.sum(dim=(0, 2, 3)))))
    out.append(("adam/began_encoder_n64", make_adam))
    return out


def time_op(fn, repetitions, min_time, warmup_time):
    """Median over repetitions of the mean ms per iteration; each repetition runs >= min_time seconds."""
    start = time.perf_counter()
    calls = 0
    # Warm-up (oneDNN's primitive cache, the allocator's free lists): two calls and >= warmup_time seconds, as
    # Google Benchmark's --benchmark_min_warmup_time does for atelier's side.
    while calls < 2 or time.perf_counter() - start < warmup_time:
        fn()
        calls += 1
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    iters = max(1, int(min_time / once))
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        samples.append((time.perf_counter() - start) * 1e3 / iters)
    return statistics.median(samples), iters


def parse_arguments(description, program):
    """The command line every op peer shares (this script and op_table_torch.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--filter", default=".", help="regex on benchmark names (default: all)")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per repetition")
    parser.add_argument("--out", default=None, help="write the JSON here instead of to stdout")
    parser.add_argument("--warmup-time", type=float, default=0.0, help="seconds of warm-up per op (at least 2 calls)")
    parser.add_argument("--list", action="store_true", help="print the names, one a line, and exit (op_table_torch.py: its rows)")
    default_threads = int(os.environ.get("ATELIER_NUM_THREADS", os.cpu_count() or 1))
    parser.add_argument("--threads", type=int, default=default_threads,
                        help="torch.set_num_threads (default ATELIER_NUM_THREADS, else all cores)")
    args = parser.parse_args()
    if args.threads < 1 or args.repetitions < 1 or args.min_time < 0 or args.warmup_time < 0:
        sys.exit("%s: --threads and --repetitions must be >= 1, --min-time and --warmup-time >= 0" % program)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return args


def time_cases(args, cases):
    """Times each (name, make) of `cases` whose name matches --filter; make() returns the function to time."""
    pattern = re.compile(args.filter)
    results = []
    for name, make in cases:
        if not pattern.search(name):
            continue
        ms, iters = time_op(make(), args.repetitions, args.min_time, args.warmup_time)
        results.append({"name": name, "ms": ms, "reps": args.repetitions, "iters": iters})
        print("%-60s %12.4f ms" % (name, ms), file=sys.stderr)
    return results


def write_results(args, results):
    """The JSON that scripts/bench-vs-torch.sh joins with atelier's: the run's context and the results."""
    context = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled,
        "config": torch.__config__.show(),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
    }
    text = json.dumps({"context": context, "benchmarks": results}, indent=1) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def main():
    args = parse_arguments(__doc__.splitlines()[0], "ops_torch.py")
    if args.list:
        print("\n".join(name for name, _ in cases()))
        return
    with torch.no_grad():
        results = time_cases(args, cases())
    write_results(args, results)


if __name__ == "__main__":
    main()
