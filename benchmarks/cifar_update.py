"""Seconds per generator update of glow-small and realnvp-small on cifar10-5k, MLE / ADV / Hybrid,
timed in alternation in one process (the evidence of issue 24 needs them on equal terms).

Each case is the trainer's own ``Trainer.train_step`` with the cifar10-5k reproduction's settings
(the training presets ``cifar10-mle/adv/hybrid``: batch 64, λ = 1 for Hybrid, n_critic 5, with
``dcgan-cifar10-small``, as ``flowgan reproduce --preset cifar10-5k`` trains them).
Rounds go model by model and objective by objective, so drift of the machine hits every case
alike; the median over rounds is printed with the range.

    python benchmarks/cifar_update.py --data-dir ../shared/data [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
from common import machine, timeit

MODELS = ("realnvp-small", "glow-small")
OBJECTIVES = {"mle": "cifar10-mle", "adv": "cifar10-adv", "hybrid": "cifar10-hybrid"}


def trainer_step(model: str, preset: str, dataset):
    from flowgan.config import resolve_config
    from flowgan.training import Trainer

    critic = "dcgan-cifar10-small"
    cfg = resolve_config(preset, dataset="cifar10-5k", model=model, critic=critic, max_steps=10**9)
    trainer = Trainer(cfg, tempfile.mkdtemp(), data=dataset, progress=False)
    return trainer.train_step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seconds", type=float, default=4.0, help="minimum timing per case and round")
    args = p.parse_args()
    from flowgan.data import load_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_dataset("cifar10-5k", args.data_dir)
    print(machine())
    steps = {(m, o): trainer_step(m, preset, dataset) for m in MODELS for o, preset in OBJECTIVES.items()}
    times: dict[tuple[str, str], list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for key, step in steps.items():
            times[key].append(timeit(step, warmup=1, min_time=args.seconds, min_reps=2))
    print(f"{'model':14} {'objective':9} {'s/update':>9} {'range':>15}")
    for (m, o), t in times.items():
        print(f"{m:14} {o:9} {statistics.median(t):9.3f} {min(t):7.3f}–{max(t):.3f}")
    for o in OBJECTIVES:
        ratio = statistics.median(times[("realnvp-small", o)]) / statistics.median(times[("glow-small", o)])
        print(f"{o}: glow-small is {ratio:.1f}x as fast as realnvp-small per update")


if __name__ == "__main__":
    main()
