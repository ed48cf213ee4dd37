"""Images/s of the nice-mnist MLE training step, and its FLOP rate against the machine's matmul peak.

The step is the trainer's own (``flowgan.training.Trainer.train_step``: batch sampling and dequantization, forward,
backward, gradient-norm check, fused Adam) on real mnist5k digits. FLOPs counted: 6 × the
multiply-accumulates of the coupling MLPs per image (2 forward, 4 backward: input and weight
gradients); element-wise work is not counted, so the ratio is conservative. The peak is an fp32
2048×2048 matmul measured in the same run.

    python benchmarks/nice_step.py [--batch 100 500] [--precision fp32 bf16] [--norm-cost]

``--norm-cost`` also measures what the coupling networks' batch normalisation (the default since
issue 10) costs: the step of the normalised and of the plain nice-mnist, timed in alternation,
their time ratio per round (median and range).
"""

from __future__ import annotations

import argparse
import tempfile

from common import LAST_RATIOS, interleaved_ratio, linear_macs, machine


def trainer_step(batch: int, precision: str = "fp32", compile: bool = False, norm: str = "batch"):
    """``(step function, FLOPs per step)`` of the trainer's own nice-mnist MLE step."""
    from flowgan.config import TrainConfig
    from flowgan.data import load_dataset
    from flowgan.training import Trainer

    cfg = TrainConfig(
        dataset="mnist5k",
        model="nice-mnist",
        model_options={"norm": norm},
        batch_size=batch,
        lr=1e-4,
        beta1=0.5,
        precision=precision,
        compile=compile,
        max_steps=10**9,
    )
    trainer = Trainer(cfg, tempfile.mkdtemp(), data=load_dataset("mnist5k"), progress=False)
    trainer.modules.model.train()
    return trainer.train_step, 6 * linear_macs(trainer.modules.model, batch)


def measure(batch: int, precision: str = "fp32", rounds: int = 5) -> dict:
    step, flops = trainer_step(batch, precision)
    ratio, sec, peak = interleaved_ratio(step, flops, rounds=rounds)
    return {
        "batch": batch,
        "precision": precision,
        "images_per_s": batch / sec,
        "step_ms": sec * 1e3,
        "flop_per_s": flops / sec,
        "ratio": ratio,
        "peak": peak,
        "ratio_range": (min(LAST_RATIOS), max(LAST_RATIOS)),
    }


def measure_nll(batch: int = 1000, n_images: int = 4000, rounds: int = 5) -> dict:
    """Exact NLL evaluation (``flowgan.nll``: dequantization, forward, prior) of nice-mnist, FLOP
    rate against the matmul peak. FLOPs counted: 2 × the coupling MLPs' multiply-accumulates."""
    import torch

    import flowgan
    from flowgan.data import load_dataset

    torch.manual_seed(0)
    model = flowgan.build_model("nice-mnist").float().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    images = load_dataset("mnist5k").train.images[:n_images]
    flops = 2 * linear_macs(model, n_images)
    ratio, sec, peak = interleaved_ratio(
        lambda: flowgan.nll(model, images, "nats", batch_size=batch), flops, rounds=rounds
    )
    return {
        "batch": batch,
        "images_per_s": n_images / sec,
        "flop_per_s": flops / sec,
        "ratio": ratio,
        "peak": peak,
        "ratio_range": (min(LAST_RATIOS), max(LAST_RATIOS)),
    }


def measure_norm_cost(batch: int, rounds: int = 5) -> dict:
    """Time of the normalised step / time of the plain step, measured in alternation."""
    import statistics

    from common import timeit

    normed, _ = trainer_step(batch, norm="batch")
    plain, _ = trainer_step(batch, norm="none")
    ratios = []
    for _ in range(rounds):
        ratios.append(timeit(normed, warmup=1, min_time=2.0) / timeit(plain, warmup=1, min_time=2.0))
    return {"batch": batch, "ratio": statistics.median(ratios), "range": (min(ratios), max(ratios))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--precision", nargs="+", default=["fp32"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--norm-cost", action="store_true", help="also: normalised / plain coupling nets, step time")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("ratio = NICE step FLOP rate / fp32 2048x2048 matmul FLOP rate, median of interleaved rounds")
    print(f"{'batch':>5} {'precision':>9} {'images/s':>9} {'ms/step':>8} {'GFLOP/s':>8} {'peak':>7} {'x peak':>7}")
    for precision in args.precision:
        for b in args.batch:
            r = measure(b, precision, args.rounds)
            print(
                f"{b:>5} {precision:>9} {r['images_per_s']:>9.0f} {r['step_ms']:>8.1f} {r['flop_per_s'] / 1e9:>8.1f} "
                f"{r['peak'] / 1e9:>7.1f} {r['ratio']:>7.2f}",
                flush=True,
            )
    if args.norm_cost:
        for b in args.batch:
            r = measure_norm_cost(b, args.rounds)
            print(
                f"batch {b}: step with coupling batch norm / without = {r['ratio']:.2f}x "
                f"[{r['range'][0]:.2f}-{r['range'][1]:.2f}]",
                flush=True,
            )


if __name__ == "__main__":
    main()
