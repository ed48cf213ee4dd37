"""Generator updates per second of adversarial (WGAN-GP) and hybrid training on the CPU, and where
the time goes: sampling G(z) for the critic, critic passes (forward/backward/Adam on real and fake
batches), the gradient penalty (its double backward), and the generator update.

The whole step is the trainer's own ``Trainer.train_step``; the split re-runs the same pieces
(the same model, critic, objective and batches) one at a time, so the parts add up to about the
whole.

    python benchmarks/adv_step.py [--models nice-mnist nice-small] [--batch 100] [--flops]

``--flops`` also answers how far an ADV update *can* come toward an MLE step (issue 22, item 3):
the floating-point operations of one ADV update and of one MLE step of the same model, counted
with the FLOP formulas of ``torch.utils.flop_counter`` (matmuls and convolutions, forward, backward
and the gradient penalty's double backward), and their times interleaved in the same run. The time
ratio is the FLOP ratio divided by how much faster (FLOP/s) the ADV update runs than the MLE step.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from common import machine, timeit
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


def split(model_name: str, lam: float, batch: int, critic: str | None = None, seconds: float = 3.0) -> dict:
    from flowgan.config import TrainConfig
    from flowgan.data import load_dataset
    from flowgan.objectives import gradient_penalty
    from flowgan.training import Trainer

    cfg = TrainConfig(
        dataset="mnist5k",
        model=model_name,
        objective="wgan-gp",
        lam=lam,
        n_critic=5,
        batch_size=batch,
        lr=1e-4,
        beta1=0.5,
        max_steps=10**9,
        critic=critic or "auto",
    )
    t = Trainer(cfg, tempfile.mkdtemp(), data=load_dataset("mnist5k"), progress=False)
    m = t.modules
    m.model.train()
    m.critic.train()
    whole = timeit(t.train_step, warmup=2, min_time=seconds)

    real, z = t._real_batch(), t._latents()
    alpha = torch.rand(batch)
    D, G, obj = m.critic, m.model, m.objective
    with torch.no_grad():
        fake = G.decode(z)

    def sample():
        with torch.no_grad():
            G.decode(z)

    def critic_pass():
        m.critic_opt.zero_grad(set_to_none=True)
        loss = obj.loss.real(D(real)).mean() + obj.loss.fake(D(fake)).mean()
        loss.backward()
        m.critic_opt.step()

    def penalty():
        m.critic_opt.zero_grad(set_to_none=True)
        gradient_penalty(D, real, fake, alpha).backward()

    def generator():
        m.opt.zero_grad(set_to_none=True)
        loss, _ = obj.generator_loss(G, D, real, z, t._rand)
        loss.backward()
        m.opt.step()

    parts = {
        name: timeit(fn, warmup=2, min_time=seconds / 2)
        for name, fn in (
            ("sample G(z)", sample),
            ("critic passes", critic_pass),
            ("gradient penalty", penalty),
            ("generator update", generator),
        )
    }
    n = cfg.n_critic
    per_step = {
        "sample G(z)": n * parts["sample G(z)"],
        "critic passes": n * parts["critic passes"],
        "gradient penalty": n * parts["gradient penalty"],
        "generator update": parts["generator update"],
    }
    return {"whole": whole, "parts": per_step, "critic": m.critic.spec["name"]}


class _FlopCount(TorchDispatchMode):
    """FLOPs of every aten op with a formula in ``torch.utils.flop_counter`` (``FlopCounterMode``
    itself cannot count ``autograd.grad`` inside: its module hooks refuse it)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def _trainer(model_name: str, objective: str, batch: int):
    from flowgan.config import TrainConfig
    from flowgan.data import load_dataset
    from flowgan.training import Trainer

    cfg = TrainConfig(
        dataset="mnist5k", model=model_name, objective=objective, n_critic=5, batch_size=batch,
        lr=1e-4, beta1=0.5, max_steps=10**9,
    )  # fmt: skip
    t = Trainer(cfg, tempfile.mkdtemp(), data=load_dataset("mnist5k"), progress=False)
    t.modules.model.train()
    if t.modules.critic is not None:
        t.modules.critic.train()
    return t


def flop_budget(model_name: str, batch: int, rounds: int = 3, seconds: float = 3.0) -> dict:
    """Counted FLOPs and measured seconds of one ADV update (WGAN-GP, n_critic 5) and one MLE step
    (the trainer's ``train_step``); times are medians of ``rounds`` interleaved timings."""
    import statistics

    steps = {"mle": _trainer(model_name, "mle", batch), "adv": _trainer(model_name, "wgan-gp", batch)}
    flops = {}
    for name, t in steps.items():
        t.train_step()  # warm
        with _FlopCount() as counter:
            t.train_step()
        flops[name] = counter.total
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, t in steps.items():
            times[name].append(timeit(t.train_step, warmup=1, min_time=seconds))
    sec = {k: statistics.median(v) for k, v in times.items()}
    return {
        "flops": flops,
        "seconds": sec,
        "flop_ratio": flops["adv"] / flops["mle"],
        "time_ratio": sec["adv"] / sec["mle"],
        "rate_ratio": (flops["adv"] / sec["adv"]) / (flops["mle"] / sec["mle"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["nice-mnist", "nice-small"])
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--flops", action="store_true", help="also: counted FLOPs of an ADV update against an MLE step")
    args = p.parse_args()
    print(f"machine: {machine()}")
    if args.flops:
        for model in args.models:
            r = flop_budget(model, args.batch)
            f, s = r["flops"], r["seconds"]
            print(
                f"{model}: MLE step {f['mle'] / 1e9:.2f} GFLOP in {s['mle'] * 1e3:.0f} ms, ADV update "
                f"{f['adv'] / 1e9:.2f} GFLOP in {s['adv'] * 1e3:.0f} ms: FLOP ratio {r['flop_ratio']:.2f}, "
                f"time ratio {r['time_ratio']:.2f} (the ADV update runs at {r['rate_ratio']:.2f}x the MLE "
                f"step's FLOP rate)",
                flush=True,
            )
    print("n_critic = 5; times per generator update; parts measured separately (sum ~ whole)")
    for model in args.models:
        for lam, name in ((0.0, "adv"), (0.1, "hybrid")):
            r = split(model, lam, args.batch)
            total = sum(r["parts"].values())
            shares = ", ".join(f"{k} {v * 1e3:.0f} ms ({v / total:.0%})" for k, v in r["parts"].items())
            print(
                f"{model} ({r['critic']}) {name}: {1 / r['whole']:.2f} generator updates/s ({r['whole'] * 1e3:.0f} "
                f"ms); {shares}",
                flush=True,
            )


if __name__ == "__main__":
    main()
