"""Does bf16 autocast training reach the same validation NLL as fp32 after the same steps?

Trains the same model from the same initialisation and data stream twice, once in fp32 and once
with ``--precision bf16`` (autocast; the exact NLL is always evaluated in float32), and prints
the validation NLL of both after each evaluation, their difference and the speed of each.

    python benchmarks/bf16_parity.py [--model nice-mnist] [--steps 1000] [--batch 100]
"""

from __future__ import annotations

import argparse
import tempfile

from common import machine


def run(model: str, dataset: str, steps: int, batch: int, precision: str, eval_every: int):
    from flowgan.config import TrainConfig
    from flowgan.data import load_dataset
    from flowgan.rundir import read_metrics
    from flowgan.training import Trainer

    cfg = TrainConfig(
        dataset=dataset,
        model=model,
        batch_size=batch,
        lr=1e-4,
        beta1=0.5,
        max_steps=steps,
        eval_every=eval_every,
        precision=precision,
        train_eval_samples=500,
    )
    with tempfile.TemporaryDirectory() as tmp:
        summary = Trainer(cfg, tmp, data=load_dataset(dataset), progress=False).fit()
        evals = read_metrics(tmp, "eval")
        trains = read_metrics(tmp, "train")
    speed = sum(r["images_per_s"] for r in trains) / len(trains)
    return evals, speed, summary["time"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="nice-mnist")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=250)
    args = p.parse_args()
    print(f"machine: {machine()}")
    fp32, s32, t32 = run(args.model, args.dataset, args.steps, args.batch, "fp32", args.eval_every)
    bf16, s16, t16 = run(args.model, args.dataset, args.steps, args.batch, "bf16", args.eval_every)
    print(f"{args.model} on {args.dataset}, batch {args.batch}, {args.steps} steps")
    print(f"{'step':>6} {'fp32 val NLL':>13} {'bf16 val NLL':>13} {'diff (nats)':>12} {'rel':>8}")
    for a, b in zip(fp32, bf16):
        d = b["val_nll_nats"] - a["val_nll_nats"]
        rel = abs(d) / max(abs(a["val_nll_nats"]), 1e-9)
        print(f"{a['step']:>6} {a['val_nll_nats']:>13.2f} {b['val_nll_nats']:>13.2f} {d:>12.2f} {rel:>8.2%}")
    print(
        f"training speed: fp32 {s32:.0f} images/s, bf16 {s16:.0f} images/s ({s16 / s32:.2f}x); wall {t32:.0f} s vs "
        f"{t16:.0f} s"
    )


if __name__ == "__main__":
    main()
