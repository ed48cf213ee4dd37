"""glow-small's maximum-likelihood training step in flowgan against normflows' Glow of the same
configuration (issue 24), on real cifar10-5k images, in one run.

The same network on both sides: 3×32×32 input, 2 levels (squeeze, K steps of actnorm + LU 1×1
convolution + affine coupling with a sigmoid(h + 2) scale and a zero-initialised 3×3 / 1×1 / 3×3
network of ``hidden`` channels without actnorm inside, then a split), K = 4, hidden = 64 (glow-small),
batch 64, Adam. Differences that remain: flowgan's prior at the split is Glow's learned
*conditional* prior (a zero-initialised convolution of the kept half); normflows' ``GlowBase``
prior of the factored-out half is a learned per-channel Gaussian, not conditional (a little less
work for normflows). Both see the same logit-transformed dequantized images (flowgan's logit
step inside its model, normflows' outside the timed model — it has no such layer in its
multiscale example — so its step does slightly less).

normflows is needed only for this benchmark: ``pip install normflows==1.7.3``.

    python benchmarks/glow_step.py --data-dir ../shared/data [--batch 64] [--steps 4] [--hidden 64] [--rounds 5]

Prints images/s of each and their ratio per round (median and range: the two steps are timed in
alternation, so drift of the machine's speed cancels).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
from common import machine, timeit

ALPHA = 1e-7


def normflows_step(batch: int, steps: int, hidden: int, data_dir: str | None, levels: int = 2):
    import normflows as nf

    from flowgan.data import load_dataset

    c, h, w = 3, 32, 32
    q0, merges, flows = [], [], []
    for i in range(levels):  # normflows lists the levels from the latent side
        level = [
            nf.flows.GlowBlock(c * 2 ** (levels + 1 - i), hidden, split_mode="channel", scale=True)
            for _ in range(steps)
        ]
        flows.append([*level, nf.flows.Squeeze()])
        if i > 0:
            merges.append(nf.flows.Merge())
            shape = (c * 2 ** (levels - i), h // 2 ** (levels - i), w // 2 ** (levels - i))
        else:
            shape = (c * 2 ** (levels + 1), h // 2**levels, w // 2**levels)
        q0.append(nf.distributions.GlowBase(shape))
    model = nf.MultiscaleFlow(q0, flows, merges)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = load_dataset("cifar10-5k", data_dir).train.images
    gen = torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        x = (images[idx].float() + torch.rand(batch, c, h, w, generator=gen)) / 256
        y = ALPHA + (1 - 2 * ALPHA) * x
        loss = model.forward_kld(torch.log(y) - torch.log1p(-y))
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # normflows' actnorms initialise from the first batch, as flowgan's do
    return step


def flowgan_step(batch: int, steps: int, hidden: int, data_dir: str | None):
    from flowgan.config import TrainConfig
    from flowgan.data import load_dataset
    from flowgan.training import Trainer

    cfg = TrainConfig(
        dataset="cifar10-5k",
        model="glow-small",
        model_options={"steps": steps, "hidden": hidden},
        batch_size=batch,
        lr=1e-3,
        beta1=0.9,
        max_steps=10**9,
    )
    trainer = Trainer(cfg, tempfile.mkdtemp(), data=load_dataset("cifar10-5k", data_dir), progress=False)
    trainer.modules.model.train()
    trainer.train_step()
    return trainer.train_step, sum(p.numel() for p in trainer.modules.model.parameters())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=4, help="steps per level (glow-small: 4)")
    p.add_argument("--hidden", type=int, default=64, help="channels of the coupling networks (glow-small: 64)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--data-dir", help="folder with cifar10-5k.npz (e.g. ../shared/data)")
    args = p.parse_args()
    try:
        import normflows  # noqa: F401
    except ImportError:
        raise SystemExit("normflows is not installed: pip install normflows==1.7.3")
    print(f"machine: {machine()}")
    torch.manual_seed(0)
    nf_step = normflows_step(args.batch, args.steps, args.hidden, args.data_dir)
    fg_step, n_params = flowgan_step(args.batch, args.steps, args.hidden, args.data_dir)
    print(
        f"glow-small: 2 levels x {args.steps} steps, hidden {args.hidden}, batch {args.batch}, {n_params:,} parameters"
    )
    ratios, nf_rates, fg_rates = [], [], []
    for _ in range(args.rounds):
        nf_s = timeit(nf_step, warmup=1, min_time=2.0)
        fg_s = timeit(fg_step, warmup=1, min_time=2.0)
        nf_rates.append(args.batch / nf_s)
        fg_rates.append(args.batch / fg_s)
        ratios.append(nf_s / fg_s)
    print(f"normflows {statistics.median(nf_rates):.0f} images/s, flowgan {statistics.median(fg_rates):.0f} images/s")
    print(
        f"flowgan / normflows speed: {statistics.median(ratios):.2f}x (median of {args.rounds} rounds, range "
        f"{min(ratios):.2f}-{max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
