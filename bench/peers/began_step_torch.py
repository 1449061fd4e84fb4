#!/usr/bin/env python3
"""BEGAN's training step in PyTorch: the golden fixture of tests/test_began_step.cpp, and a timing peer.

The model is atelier's (began/model.h) with the same module paths, so the state-dict names match atelier's:
    D: enc.convs.<i>, enc.fc, dec.fc, dec.convs.<i>, dec.out      G: fc, convs.<i>, out
3x3 convolutions with padding 1, ELU after every convolution except the decoders' last, nearest x2 upsampling.
The step is began/step.h's: D step (G(z_D) under no_grad), then G step with D's parameters frozen, then
k <- clip(k + lambda_k (gamma L(x) - L(G(z_G))), 0, 1), M_global = L(x) + |gamma L(x) - L(G(z_G))|.

Run by hand (never in CI), from the repository root, with $PYTHON: PyTorch 2.x from PyPI is the reference
(scripts/torch-venv.sh makes that environment and prints its interpreter); Debian's 1.13 (/usr/bin/python3) also
runs it:

  --golden   writes tests/fixtures/began_step.safetensors: 32x32, C=1, n=8, h=8, batch 4, 3 steps from fixed
             weights, x, z_D and z_G (torch.manual_seed(1703)), k_0 = 0.1 and lambda_k = 0.01 (so k moves every
             step and is never clipped), gamma 0.5, Adam lr 1e-4, betas (0.5, 0.999). All float32:
               G.<name>, D.<name>                 the initial parameters
               step<t>.x, step<t>.z_d, step<t>.z_g   the inputs of step t = 1, 2, 3
               step<t>.<scalar>                   0-d: loss_real, loss_fake_d, loss_fake_g, loss_d, loss_g,
                                                  k_t (before the update), k_next (after), m_global
               after<t>.G.<name>, after<t>.D.<name>  every parameter after steps 1 and 3
             and __metadata__ with the settings (image_size, channels, n, h, batch, steps, k0, lambda_k, gamma,
             lr, beta1, beta2, eps; floats as repr() text) and the torch version.
  --bench    times one step (median and minimum of --reps after --warmup), NCHW and channels-last (or one of
             them: --layout), and prints one JSON line per layout and step mode. Options: --device cpu|cuda,
             --precision fp32|tf32|bf16, --threads, --image-size, --channels, --n, --h, --batch, --layout,
             --step-mode eager|cuda_graph|both (--cuda-graph is cuda_graph), --case (below).
             --case SIZE,CHANNELS,N,PRECISION,LAYOUT (repeatable, e.g. --case 64,3,128,tf32,channels_last) times
             several cases in one process, in the order given, each with its own --image-size, --channels, --n,
             --precision and --layout (the other options apply to all): importing torch and starting CUDA are
             paid once (.gpu/run.sh's targets plan runs every PyTorch case this way).
             Step modes: eager is began_step as the golden fixture runs it (k a Python float, the losses read
             with .item() each step); cuda_graph (CUDA only) captures began_step_tensors (k a 0-d tensor on the
             GPU, no host read, Adam with capturable=True) once in a CUDA graph and times its replays.
             On CUDA a row also has gpu_peak_mib (torch.cuda.max_memory_allocated, reset per row) and the GPU's
             name; k_last is k after the last timed step (a sanity figure: both modes should move it alike).
             Memory: max_rss_mib is the process's peak resident set (resource.getrusage), rss_base_mib the resident
             set before the layout built its model (Python, torch and its libraries). The peak only grows, so the
             second layout of a --layout both run reports the larger of the two: scripts/bench-vs-torch.sh --began
             runs one layout per process.
  --accuracy one step's error under each precision against the same step in float64 on the same device, one JSON
             line per precision and layout: the losses' largest relative error, the worst parameter tensor's
             gradient (relative L2; D's from the D step, G's from the G step) and the Adam update's (every
             parameter's change, D's then G's), as tests/cuda/test_cuda_precision.cpp states atelier's (k = 0.3,
             weights from torch.manual_seed(3)). --image-size, --channels, --n, --h, --batch and --layout apply;
             that test's rig is --image-size 32 --channels 3 --n 16 --h 16 --batch 4. cudnn.benchmark is on, as
             in --bench, so the algorithms are the kind timed there (tf32 exists on CUDA only: the CPU gives fp32
             and bf16 rows).
"""
import argparse
import json
import os
import resource
import struct
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("began_step_torch.py needs PyTorch: run it with the interpreter scripts/torch-venv.sh prints (PyPI), "
             "or apt-get install python3-torch (Debian's 1.13)")


# ---------------------------------------------------------------- the model (began/model.h)

def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1)


def num_upsamplings(image_size):
    k, s = 0, image_size
    while s > 8:
        s //= 2
        k += 1
    if 8 << k != image_size or k < 2:
        raise ValueError(f"image size must be 8 * 2^k with k >= 2, got {image_size}")
    return k


class Encoder(nn.Module):
    def __init__(self, image_size, channels, n, h):
        super().__init__()
        k = num_upsamplings(image_size)
        layers = [conv3x3(channels, n), conv3x3(n, n)]
        for i in range(1, k + 1):
            layers += [conv3x3(i * n, (i + 1) * n, 2), conv3x3((i + 1) * n, (i + 1) * n)]
        layers.append(conv3x3((k + 1) * n, (k + 1) * n))
        self.convs = nn.Sequential(*layers)  # only the convs: ELU is applied in forward, as in atelier
        self.fc = nn.Linear(8 * 8 * (k + 1) * n, h)

    def forward(self, x):
        for conv in self.convs:
            x = F.elu(conv(x))
        return self.fc(torch.flatten(x, 1))


class Decoder(nn.Module):
    def __init__(self, image_size, channels, n, h, skip=False, tanh=False):
        super().__init__()
        self.k, self.n, self.skip, self.tanh = num_upsamplings(image_size), n, skip, tanh
        self.fc = nn.Linear(h, 8 * 8 * n)
        layers = [conv3x3(n, n), conv3x3(n, n)]
        for _ in range(self.k):
            layers += [conv3x3(2 * n if skip else n, n), conv3x3(n, n)]
        self.convs = nn.Sequential(*layers)
        self.out = conv3x3(n, channels)

    def forward(self, z):
        h0 = self.fc(z).reshape(z.shape[0], self.n, 8, 8)
        y = F.elu(self.convs[1](F.elu(self.convs[0](h0))))
        for i in range(self.k):
            y = F.interpolate(y, scale_factor=2, mode="nearest")
            if self.skip:
                y = torch.cat([y, F.interpolate(h0, scale_factor=2 << i, mode="nearest")], 1)
            y = F.elu(self.convs[2 + 2 * i](y))
            y = F.elu(self.convs[3 + 2 * i](y))
        y = self.out(y)
        return torch.tanh(y) if self.tanh else y


class Discriminator(nn.Module):
    def __init__(self, image_size, channels, n, h, skip=False, tanh=False):
        super().__init__()
        self.enc = Encoder(image_size, channels, n, h)
        self.dec = Decoder(image_size, channels, n, h, skip, tanh)

    def forward(self, x):
        return self.dec(self.enc(x))


# ---------------------------------------------------------------- the step (began/step.h)

def recon_loss(D, v):
    """L(v) = mean |v - D(v)|."""
    return torch.mean(torch.abs(v - D(v)))


def d_and_g_steps(G, D, opt_g, opt_d, x, z_d, z_g, k, autocast=None):
    """The D step and the G step; k is a Python float or a 0-d tensor. Returns the 0-d loss tensors
    (loss_real, loss_fake_d, loss_d, loss_g) without reading them."""
    ctx = autocast if autocast is not None else _null_context
    # D step: G(z_D) is a constant.
    with torch.no_grad(), ctx():
        fake_d = G(z_d)
    opt_d.zero_grad(set_to_none=True)
    with ctx():
        loss_real = recon_loss(D, x)
        loss_fake_d = recon_loss(D, fake_d)
        loss_d = loss_real - k * loss_fake_d
    loss_d.backward()
    opt_d.step()
    # G step: D frozen (no weight gradients for D; its .grad stays as the D step left it).
    flags = [p.requires_grad for p in D.parameters()]
    for p in D.parameters():
        p.requires_grad_(False)
    try:
        opt_g.zero_grad(set_to_none=True)
        with ctx():
            loss_g = recon_loss(D, G(z_g))
        loss_g.backward()
        opt_g.step()
    finally:
        for p, f in zip(D.parameters(), flags):
            p.requires_grad_(f)
    return loss_real, loss_fake_d, loss_d, loss_g


def began_step(G, D, opt_g, opt_d, x, z_d, z_g, k, gamma, lambda_k, autocast=None):
    """The step as the golden fixture runs it: k a Python float, the losses read back after the step."""
    loss_real, loss_fake_d, loss_d, loss_g = d_and_g_steps(G, D, opt_g, opt_d, x, z_d, z_g, k, autocast)
    lr_, lg = loss_real.item(), loss_g.item()
    balance = gamma * lr_ - lg
    return dict(loss_real=lr_, loss_fake_d=loss_fake_d.item(), loss_fake_g=lg, loss_d=loss_d.item(), loss_g=lg,
                k_t=k, k_next=min(max(k + lambda_k * balance, 0.0), 1.0), m_global=lr_ + abs(balance))


def began_step_tensors(G, D, opt_g, opt_d, x, z_d, z_g, k, gamma, lambda_k, autocast=None):
    """began_step with no host read: k is a 0-d tensor on the step's device, updated in place, and the step's
    scalars come back as 0-d tensors (k_t is k before the update, k_next after). This is the step --cuda-graph
    captures; run eagerly it gives began_step's numbers (k in float32 rather than a Python float)."""
    loss_real, loss_fake_d, loss_d, loss_g = d_and_g_steps(G, D, opt_g, opt_d, x, z_d, z_g, k, autocast)
    with torch.no_grad():
        lr_, lg = loss_real.detach().float(), loss_g.detach().float()
        balance = gamma * lr_ - lg
        k_t = k.clone()
        k.copy_(torch.clamp(k + lambda_k * balance, 0.0, 1.0))
    return dict(loss_real=lr_, loss_fake_d=loss_fake_d.detach().float(), loss_fake_g=lg,
                loss_d=loss_d.detach().float(), loss_g=lg, k_t=k_t, k_next=k, m_global=lr_ + torch.abs(balance))


class _null_context:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def make_adam(module, lr, betas, capturable=False):
    # foreach/fused variants do not exist in 1.13's signature; the default loop is the same arithmetic. capturable
    # (CUDA graphs) keeps Adam's step counts on the device, so a replayed step needs no host value.
    extra = dict(capturable=True) if capturable else {}
    return torch.optim.Adam(module.parameters(), lr=lr, betas=betas, eps=1e-8, **extra)


# ---------------------------------------------------------------- --golden

def write_safetensors(path, tensors, metadata):
    """float32 tensors, in order, with string metadata; the header padded to a multiple of 8 (as atelier writes)."""
    header = {"__metadata__": metadata}
    offset, blobs = 0, []
    for name, t in tensors:
        # Through Python floats, not numpy (PyTorch 2.x wheels do not require numpy): float32 -> double -> float32
        # is exact.
        values = t.detach().to("cpu", torch.float32).reshape(-1).tolist()
        data = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def golden(args):
    settings = dict(image_size=32, channels=1, n=8, h=8, batch=4, steps=3, k0=0.1, lambda_k=0.01, gamma=0.5,
                    lr=1e-4, beta1=0.5, beta2=0.999, eps=1e-8)
    s = settings
    torch.manual_seed(1703)
    torch.set_num_threads(1)
    G = Decoder(s["image_size"], s["channels"], s["n"], s["h"])
    D = Discriminator(s["image_size"], s["channels"], s["n"], s["h"])
    opt_g = make_adam(G, s["lr"], (s["beta1"], s["beta2"]))
    opt_d = make_adam(D, s["lr"], (s["beta1"], s["beta2"]))
    tensors = [("G." + k, v.clone()) for k, v in G.state_dict().items()]
    tensors += [("D." + k, v.clone()) for k, v in D.state_dict().items()]
    k = s["k0"]
    b, c, size, h = s["batch"], s["channels"], s["image_size"], s["h"]
    for t in range(1, s["steps"] + 1):
        x = torch.rand(b, c, size, size) * 2 - 1
        z_d = torch.rand(b, h) * 2 - 1
        z_g = torch.rand(b, h) * 2 - 1
        r = began_step(G, D, opt_g, opt_d, x, z_d, z_g, k, s["gamma"], s["lambda_k"])
        if not (0 < r["k_next"] < 1) or r["k_next"] == k:
            sys.exit(f"step {t}: k {k} -> {r['k_next']} is clipped or does not move; change the fixture settings")
        k = r["k_next"]
        tensors += [(f"step{t}.x", x), (f"step{t}.z_d", z_d), (f"step{t}.z_g", z_g)]
        tensors += [(f"step{t}.{name}", torch.tensor(value, dtype=torch.float32)) for name, value in r.items()]
        print(f"step {t}: " + ", ".join(f"{name} {value:.6f}" for name, value in r.items()))
        if t in (1, 3):
            tensors += [(f"after{t}.G." + n, v.clone()) for n, v in G.state_dict().items()]
            tensors += [(f"after{t}.D." + n, v.clone()) for n, v in D.state_dict().items()]
    metadata = {name: repr(value) for name, value in settings.items()}
    metadata["torch"] = torch.__version__
    metadata["written_by"] = "bench/peers/began_step_torch.py --golden"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = args.out or os.path.join(root, "tests", "fixtures", "began_step.safetensors")
    write_safetensors(path, tensors, metadata)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(tensors)} tensors, torch {torch.__version__})")


# ---------------------------------------------------------------- --bench

def step_flops(image_size, channels, n, h, batch):
    """FLOPs (2 per multiply-add) of one step as it executes: D forward on x and G(z_D), backward of both with
    input gradients of every layer but the first (x needs none) and weight gradients; G forward without grad;
    G forward, D forward, D backward (input gradients only, D frozen), G backward (weight gradients, and input
    gradients above G's first layer)."""
    k = num_upsamplings(image_size)

    def enc_layers():
        out, s = [], image_size
        out.append((channels, n, s * s))
        out.append((n, n, s * s))
        for i in range(1, k + 1):
            s //= 2
            out += [(i * n, (i + 1) * n, s * s), ((i + 1) * n, (i + 1) * n, s * s)]
        out.append(((k + 1) * n, (k + 1) * n, s * s))
        return [2 * cin * cout * 9 * px for cin, cout, px in out] + [2 * 64 * (k + 1) * n * h]

    def dec_layers():
        out, s = [2 * h * 64 * n], 8
        out += [2 * n * n * 9 * 64] * 2
        for _ in range(k):
            s *= 2
            out += [2 * n * n * 9 * s * s] * 2
        out.append(2 * n * channels * 9 * s * s)
        return out

    e, d = enc_layers(), dec_layers()
    fwd_d = sum(e) + sum(d)
    fwd_g = sum(d)
    # D step: 2 forwards of D, 2 backwards with weight grads and input grads (minus the first layer's input grad).
    d_step = 2 * fwd_d + 2 * (2 * fwd_d - e[0]) + fwd_g
    # G step: G forward, D forward, D input grads, G backward (weight grads + input grads but not into z's linear).
    g_step = fwd_g + fwd_d + fwd_d + (2 * fwd_g - d[0])
    return batch * (d_step + g_step)


def max_rss_mib():
    """The process's peak resident set so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_now_mib():
    """The resident set now, from /proc/self/statm (0 where it is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)
    except OSError:
        return 0.0


def graphed_step(G, D, opt_g, opt_d, x, z_d, z_g, k, autocast, warmup):
    """The whole step (began_step_tensors) captured once in a CUDA graph; returns a function that replays it.
    As PyTorch's documentation asks for whole-network capture: warm-up steps on a side stream first (cuDNN's
    autotuning, Adam's state and the gradient buffers exist before capture), gradients set to None inside the
    captured step so that backward allocates them from the graph's private pool. The inputs (x, z_d, z_g, k)
    are static tensors: a caller copies new data into them before a replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(max(warmup, 3)):
            began_step_tensors(G, D, opt_g, opt_d, x, z_d, z_g, k, 0.5, 0.001, autocast)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        began_step_tensors(G, D, opt_g, opt_d, x, z_d, z_g, k, 0.5, 0.001, autocast)
    return graph.replay


def emit(args, row):
    """Prints one JSON line (with the GPU's name on CUDA) and appends it to --out when given."""
    if args.device == "cuda":
        row["gpu"] = torch.cuda.get_device_name()
    line = json.dumps(row)
    print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")


def use_precision(device, precision, graph=False):
    """Sets PyTorch's TF32 switches for `precision` on CUDA (on for tf32, off otherwise) and returns the context
    factory its step runs under: bf16 autocast, or None. Autocast's weight cache must be off inside a captured graph
    (its casts are part of the step)."""
    if device == "cuda":
        allow = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = allow
        torch.backends.cudnn.allow_tf32 = allow
    if precision != "bf16":
        return None
    return lambda: torch.autocast(device_type=device, dtype=torch.bfloat16, cache_enabled=not graph)


def bench(args):
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    flops = step_flops(args.image_size, args.channels, args.n, args.h, args.batch)
    layouts = ("nchw", "channels_last") if args.layout == "both" else (args.layout,)
    modes = ("eager", "cuda_graph") if args.step_mode == "both" else (args.step_mode,)
    for layout in layouts:
        for mode in modes:
            graph = mode == "cuda_graph"
            autocast = use_precision(args.device, args.precision, graph)
            rss_base = rss_now_mib()
            if args.device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            torch.manual_seed(0)
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            G = Decoder(args.image_size, args.channels, args.n, args.h).to(device, memory_format=fmt)
            D = Discriminator(args.image_size, args.channels, args.n, args.h).to(device, memory_format=fmt)
            opt_g = make_adam(G, 1e-4, (0.5, 0.999), capturable=graph)
            opt_d = make_adam(D, 1e-4, (0.5, 0.999), capturable=graph)
            x = (torch.rand(args.batch, args.channels, args.image_size, args.image_size, device=device) * 2 - 1)
            x = x.contiguous(memory_format=fmt)
            z_d = torch.rand(args.batch, args.h, device=device) * 2 - 1
            z_g = torch.rand(args.batch, args.h, device=device) * 2 - 1
            times, replay = [], None
            if graph:
                k = torch.zeros((), device=device)
                replay = graphed_step(G, D, opt_g, opt_d, x, z_d, z_g, k, autocast, args.warmup)
                for i in range(args.warmup + args.reps):
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    replay()
                    torch.cuda.synchronize()
                    if i >= args.warmup:
                        times.append(time.perf_counter() - t0)
                k_last = k.item()
            else:
                k = 0.0
                for i in range(args.warmup + args.reps):
                    if args.device == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    r = began_step(G, D, opt_g, opt_d, x, z_d, z_g, k, 0.5, 0.001, autocast)
                    if args.device == "cuda":
                        torch.cuda.synchronize()
                    if i >= args.warmup:
                        times.append(time.perf_counter() - t0)
                    k = r["k_next"]
                k_last = k
            times.sort()
            sec = times[len(times) // 2]  # the upper median, as bench_train's step_s_median
            row = dict(name=f"began_step/{args.image_size}x{args.image_size}/C{args.channels}/n{args.n}",
                       layout=layout, mode=mode, device=args.device, precision=args.precision,
                       threads=args.threads, torch_threads=torch.get_num_threads(), batch=args.batch, h=args.h,
                       seconds_per_step=sec, seconds_min=times[0], steps=len(times),
                       images_per_second=args.batch / sec, gflop_per_step=flops / 1e9, gflops=flops / sec / 1e9,
                       k_last=k_last, max_rss_mib=max_rss_mib(), rss_base_mib=rss_base, torch=torch.__version__)
            if args.device == "cuda":
                row["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / (1024.0 * 1024.0)
            emit(args, row)
            # Free this row's model, optimiser state and graph pool before the next row's peak is measured.
            del G, D, opt_g, opt_d, x, z_d, z_g, k
            replay = None
            if args.device == "cuda":
                torch.cuda.empty_cache()


def accuracy(args):
    """--accuracy (the module docstring)."""
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    layouts = ("nchw", "channels_last") if args.layout == "both" else (args.layout,)

    def one_step(dtype, precision, layout):
        autocast = use_precision(args.device, precision)
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        torch.manual_seed(3)
        G = Decoder(args.image_size, args.channels, args.n, args.h).to(device, dtype, memory_format=fmt)
        D = Discriminator(args.image_size, args.channels, args.n, args.h).to(device, dtype, memory_format=fmt)
        x = (torch.rand(args.batch, args.channels, args.image_size, args.image_size) * 2 - 1).to(device, dtype)
        x = x.contiguous(memory_format=fmt)
        z_d = (torch.rand(args.batch, args.h) * 2 - 1).to(device, dtype)
        z_g = (torch.rand(args.batch, args.h) * 2 - 1).to(device, dtype)
        params = list(D.parameters()) + list(G.parameters())
        before = [p.detach().clone() for p in params]
        opt_g, opt_d = make_adam(G, 1e-4, (0.5, 0.999)), make_adam(D, 1e-4, (0.5, 0.999))
        losses = d_and_g_steps(G, D, opt_g, opt_d, x, z_d, z_g, 0.3, autocast)
        return ([float(l.detach()) for l in losses], [p.grad.detach().double() for p in params],
                torch.cat([(p.detach() - b).double().flatten() for p, b in zip(params, before)]))

    def rel(a, b):
        return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))

    for layout in layouts:
        ref_losses, ref_grads, ref_update = one_step(torch.float64, "fp32", layout)
        for precision in ("fp32", "tf32", "bf16") if args.device == "cuda" else ("fp32", "bf16"):
            losses, grads, update = one_step(torch.float32, precision, layout)
            row = dict(name=f"began_step/{args.image_size}x{args.image_size}/C{args.channels}/n{args.n}",
                       layout=layout, device=args.device, precision=precision, batch=args.batch, h=args.h,
                       loss_error=max(abs(a - b) / abs(b) for a, b in zip(losses, ref_losses)),
                       grad_error=max(rel(g, r) for g, r in zip(grads, ref_grads)),
                       update_error=rel(update, ref_update), torch=torch.__version__)
            emit(args, row)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--golden", action="store_true", help="write tests/fixtures/began_step.safetensors")
    mode.add_argument("--bench", action="store_true", help="time one training step")
    mode.add_argument("--accuracy", action="store_true",
                      help="one step's error under fp32, tf32 and bf16 against float64 (the module docstring)")
    p.add_argument("--out", default=None,
                   help="--golden: write here instead of tests/fixtures/; --bench: also append the JSON lines here")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    p.add_argument("--threads", type=int, default=int(os.environ.get("ATELIER_NUM_THREADS", "1")))
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--h", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--layout", choices=["both", "nchw", "channels_last"], default="both",
                   help="--bench: the memory layouts to time (default both, NCHW first)")
    p.add_argument("--step-mode", choices=["eager", "cuda_graph", "both"], default="eager",
                   help="--bench: eager steps (default), the whole step replayed from one CUDA graph, or both")
    p.add_argument("--cuda-graph", dest="step_mode", action="store_const", const="cuda_graph",
                   help="--bench: the same as --step-mode cuda_graph")
    p.add_argument("--case", action="append", default=[], metavar="SIZE,CHANNELS,N,PRECISION,LAYOUT",
                   help="--bench: one case of several timed in this process (repeatable); sets --image-size, "
                        "--channels, --n, --precision and --layout for that case")
    args = p.parse_args()
    if args.case and not args.bench:
        sys.exit("--case is a --bench option")
    cases = [case_args(args, spec) for spec in args.case] if args.case else [args]
    if args.bench and args.step_mode != "eager" and args.device != "cuda":
        sys.exit("--cuda-graph (--step-mode %s) needs --device cuda: CUDA graphs exist only there" % args.step_mode)
    if args.bench and args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device")
    if args.bench and (args.reps < 1 or args.warmup < 0):
        sys.exit(f"--reps must be >= 1 and --warmup >= 0, got {args.reps} and {args.warmup}")
    if args.bench and args.device != "cuda" and any(c.precision == "tf32" for c in cases):
        sys.exit("--precision tf32 exists only on CUDA")
    if args.golden:
        golden(args)
    elif args.accuracy:
        accuracy(args)
    else:
        for c in cases:
            bench(c)


def case_args(args, spec):
    """A copy of args with one --case SIZE,CHANNELS,N,PRECISION,LAYOUT applied; exits with one line when spec
    is malformed (before any case runs)."""
    fields = spec.split(",")
    try:
        size, channels, n = (int(f) for f in fields[:3])
        precision, layout = fields[3:]
        if precision not in ("fp32", "tf32", "bf16") or layout not in ("both", "nchw", "channels_last"):
            raise ValueError
        num_upsamplings(size)
        if channels < 1 or n < 1:
            raise ValueError
    except ValueError:
        sys.exit(f"--case '{spec}' is not SIZE,CHANNELS,N,PRECISION,LAYOUT (e.g. 64,3,64,tf32,channels_last; "
                 "size 8 * 2^k with k >= 2, precision fp32|tf32|bf16, layout nchw|channels_last|both)")
    c = argparse.Namespace(**vars(args))
    c.image_size, c.channels, c.n, c.precision, c.layout = size, channels, n, precision, layout
    return c


if __name__ == "__main__":
    main()
