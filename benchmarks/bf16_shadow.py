"""Where bf16 training of NICE-shaped networks loses its speed on a CPU, and one way to win it back.

A measurement of a design candidate for issue 22 (not what ``--precision bf16`` does today): four
NICE coupling MLPs (392 → 1000 ×5 → 392, additive couplings, batch 100, Adam, no batch norm),
one training step timed three ways in alternation, in one process:

* ``fp32``: plain float32, fused Adam (``torch.optim.Adam(fused=True)``);
* ``autocast``: ``torch.autocast("cpu", torch.bfloat16)``, fused Adam -- what flowgan's
  ``--precision bf16`` does: every step casts each 1000×1000 weight to bf16 and each bf16 weight
  gradient back to float32 (a strided copy: autocast forms it transposed);
* ``shadow``: bf16 *shadow* copies of the weights used by the forward pass (a custom autograd
  function that writes the bf16 weight gradient into a preallocated buffer), and one compiled
  (``torch.compile``) Adam step over all weights that reads the bf16 gradients, updates the
  float32 master weights and writes the new bf16 shadows in the same pass: no separate casts.

    python benchmarks/bf16_shadow.py [--threads 2] [--rounds 5]

Prints ms per step (median over rounds) and each variant's speed relative to fp32, with the CPU's
bf16 flags. The compiled step needs a C++ compiler (about 10-15 s to compile once).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

B, D, H, COUPLINGS, DEPTH = 100, 392, 1000, 4, 5


def couplings() -> nn.ModuleList:
    nets = nn.ModuleList()
    for _ in range(COUPLINGS):
        layers: list[nn.Module] = [nn.Linear(D, H), nn.ReLU()]
        for _ in range(DEPTH):
            layers += [nn.Linear(H, H), nn.ReLU()]
        nets.append(nn.Sequential(*layers, nn.Linear(H, D)))
    return nets


def additive(nets, x: torch.Tensor, net_forward) -> torch.Tensor:
    a, b = x[:, :D], x[:, D:]
    for i, net in enumerate(nets):
        if i % 2 == 0:
            b = b + net_forward(net, a)
        else:
            a = a + net_forward(net, b)
    return torch.cat([a, b], 1)


class ShadowLinear(torch.autograd.Function):
    """``x W̃ᵀ + b`` with the bf16 shadow ``W̃``; the weight gradient ``gᵀx`` (bf16) goes to ``buffer``."""

    @staticmethod
    def forward(ctx, x, shadow, bias, buffer):
        ctx.save_for_backward(x, shadow)
        ctx.buffer = buffer
        return torch.addmm(bias.to(torch.bfloat16), x, shadow.t())

    @staticmethod
    def backward(ctx, g):
        x, shadow = ctx.saved_tensors
        torch.mm(g.t(), x, out=ctx.buffer)
        return g @ shadow, None, g.float().sum(0), None


def adam_with_shadows(weights, grads, exp_avg, exp_avg_sq, shadows, step, lr=1e-4, b1=0.9, b2=0.999, eps=1e-8):
    for w, g, m, v, s in zip(weights, grads, exp_avg, exp_avg_sq, shadows):
        g = g.float()
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        w.sub_(lr / (1 - b1**step) * m / ((v / (1 - b2**step)).sqrt() + eps))
        s.copy_(w)


def variants(x: torch.Tensor) -> dict:
    def plain(net, h):
        return net(h)

    fp32 = couplings()
    opt_fp32 = torch.optim.Adam(fp32.parameters(), lr=1e-4, fused=True)

    def step_fp32():
        loss = additive(fp32, x, plain).square().mean()
        opt_fp32.zero_grad(set_to_none=True)
        loss.backward()
        opt_fp32.step()

    auto = couplings()
    opt_auto = torch.optim.Adam(auto.parameters(), lr=1e-4, fused=True)

    def step_autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = additive(auto, x, plain).float().square().mean()
        opt_auto.zero_grad(set_to_none=True)
        loss.backward()
        opt_auto.step()

    shadow = couplings()
    linears = [m for m in shadow.modules() if isinstance(m, nn.Linear)]
    weights = [m.weight for m in linears]
    shadows = [w.detach().to(torch.bfloat16) for w in weights]
    buffers = [torch.zeros_like(s) for s in shadows]
    index = {id(m): i for i, m in enumerate(linears)}
    exp_avg = [torch.zeros_like(w) for w in weights]
    exp_avg_sq = [torch.zeros_like(w) for w in weights]
    opt_bias = torch.optim.Adam([m.bias for m in linears], lr=1e-4, fused=True)
    compiled = torch.compile(adam_with_shadows, fullgraph=True, dynamic=False)
    count = torch.zeros(())

    def shadow_forward(net, h):
        for layer in net:
            if isinstance(layer, nn.Linear):
                i = index[id(layer)]
                h = ShadowLinear.apply(h, shadows[i], layer.bias, buffers[i])
            else:
                h = F.relu(h)
        return h

    def step_shadow():
        loss = additive(shadow, x.to(torch.bfloat16), shadow_forward).float().square().mean()
        opt_bias.zero_grad(set_to_none=True)
        loss.backward()
        count.add_(1)
        with torch.no_grad():
            compiled([w.data for w in weights], buffers, exp_avg, exp_avg_sq, shadows, count)
        opt_bias.step()

    return {"fp32": step_fp32, "autocast": step_autocast, "shadow": step_shadow}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=5, help="steps per round and variant")
    args = p.parse_args()
    from common import cpu_flags, machine

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bf16_units = sorted({"amx_bf16", "avx512_bf16"} & cpu_flags()) or ["none (bf16 is emulated: slow)"]
    print(f"{machine()}; bf16 units: {', '.join(bf16_units)}")
    steps = variants(torch.randn(B, 2 * D))
    t0 = time.perf_counter()
    steps["shadow"]()
    print(f"compiling the shadow Adam step and its first step: {time.perf_counter() - t0:.1f} s")
    for f in steps.values():
        f()
        f()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for name, f in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                f()
            times[name].append((time.perf_counter() - t0) / args.steps)
    base = statistics.median(times["fp32"])
    print(f"{'variant':10} {'ms/step':>8} {'speed vs fp32':>14}")
    for name, t in times.items():
        print(f"{name:10} {1e3 * statistics.median(t):8.1f} {base / statistics.median(t):13.2f}x")


if __name__ == "__main__":
    main()
