"""The same NICE network (4 additive couplings, 392→1000→…→392 MLPs, diagonal scaling) trained by
maximum likelihood in normflows 1.7.3 (a peer library; plain eager PyTorch with its default Adam)
and in flowgan (``flowgan.training.Trainer.train_step``), on real mnist5k digits, in one run.

normflows is needed only for this benchmark: ``pip install normflows==1.7.3``.

    python benchmarks/vs_normflows.py [--batch 100 500]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from common import machine, timeit


def normflows_step(batch: int):
    import normflows as nf

    half = 392
    flows = []
    for i in range(4):
        net = nf.nets.MLP([half] + [1000] * 6 + [half], init_zeros=True)
        flows.append(
            nf.flows.AffineCouplingBlock(net, scale=False, split_mode="channel" if i % 2 == 0 else "channel_inv")
        )
    flows.append(nf.flows.AffineConstFlow((784,), scale=True, shift=False))
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(784, trainable=False), flows)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.9))
    from flowgan.data import load_dataset

    images = load_dataset("mnist5k").train.images.reshape(-1, 784)
    gen = torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        x = (images[idx].float() + torch.rand(batch, 784, generator=gen)) / 256
        y = 1e-7 + (1 - 2e-7) * x
        h = torch.log(y) - torch.log1p(-y)  # the same logit step as flowgan's (its log-det aside)
        loss = model.forward_kld(h)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def flowgan_step(batch: int, precision: str):
    from flowgan.config import TrainConfig
    from flowgan.data import load_dataset
    from flowgan.training import Trainer

    cfg = TrainConfig(
        dataset="mnist5k",
        model="nice-mnist",
        batch_size=batch,
        lr=1e-4,
        beta1=0.5,
        precision=precision,
        max_steps=10**9,
    )
    tmp = tempfile.mkdtemp()
    trainer = Trainer(cfg, tmp, data=load_dataset("mnist5k"), progress=False)
    trainer.modules.model.train()
    return trainer.train_step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[100, 500])
    args = p.parse_args()
    try:
        import normflows  # noqa: F401
    except ImportError:
        raise SystemExit("normflows is not installed: pip install normflows==1.7.3")
    print(f"machine: {machine()}")
    print(f"{'batch':>5} {'normflows img/s':>16} {'flowgan fp32':>13} {'ratio':>6} {'flowgan bf16':>13} {'ratio':>6}")
    for b in args.batch:
        nf_s = timeit(normflows_step(b), min_time=3.0)
        fg32 = timeit(flowgan_step(b, "fp32"), min_time=3.0)
        fg16 = timeit(flowgan_step(b, "bf16"), min_time=3.0)
        print(f"{b:>5} {b / nf_s:>16.0f} {b / fg32:>13.0f} {nf_s / fg32:>6.2f} {b / fg16:>13.0f} {nf_s / fg16:>6.2f}")


if __name__ == "__main__":
    main()
