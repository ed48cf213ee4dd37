"""Images/s of the nice-mnist MLE training step, and its FLOP rate against the machine's matmul peak.

The step is the trainer's own (``Trainer.train_step``: batch sampling and dequantization, forward,
backward, gradient-norm check, fused Adam) on real mnist5k digits. FLOPs counted: 6 × the
multiply-accumulates of the coupling MLPs per image (2 forward, 4 backward: input and weight
gradients); element-wise work is not counted, so the ratio is conservative. The peak is an fp32
2048×2048 matmul measured in the same run.

    python benchmarks/nice_step.py [--batch 100 500] [--precision fp32 bf16]
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from common import linear_macs, machine, matmul_flops, timeit


def measure(batch: int, precision: str = "fp32", compile: bool = False) -> dict:
    from flowgan.config import TrainConfig
    from flowgan.data import load_dataset
    from flowgan.training import Trainer

    cfg = TrainConfig(dataset="mnist5k", model="nice-mnist", batch_size=batch, lr=1e-4, beta1=0.5, precision=precision, compile=compile, max_steps=10**9)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp, dataset=load_dataset("mnist5k"), progress=False)
        trainer.model.train()
        sec = timeit(trainer.train_step, warmup=3, min_time=3.0)
    flops = 6 * linear_macs(trainer.model, batch)
    return {"batch": batch, "precision": precision, "images_per_s": batch / sec, "step_ms": sec * 1e3, "flop_per_s": flops / sec}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--precision", nargs="+", default=["fp32"])
    args = parser.parse_args()
    peak = matmul_flops(2048)
    print(f"machine: {machine()}")
    print(f"fp32 2048x2048 matmul peak: {peak / 1e9:.1f} GFLOP/s")
    print(f"{'batch':>5} {'precision':>9} {'images/s':>9} {'ms/step':>8} {'GFLOP/s':>8} {'x peak':>7}")
    for precision in args.precision:
        for b in args.batch:
            r = measure(b, precision)
            print(f"{b:>5} {precision:>9} {r['images_per_s']:>9.0f} {r['step_ms']:>8.1f} {r['flop_per_s'] / 1e9:>8.1f} {r['flop_per_s'] / peak:>7.2f}")


if __name__ == "__main__":
    main()
