"""Samples of a flow model for the scores: fixed seeds, in blocks, on the CPU.

Shared by :mod:`.evaluate` (sample scores) and :mod:`.collapse` (collapse diagnostics), so that a
checkpoint always gives the same numbers whatever the device.
"""

from __future__ import annotations

import torch

from ..runtime import mix_seed

DEFAULT_SAMPLES = {"cuda": 50_000, "cpu": 10_000}
SAMPLE_BLOCK = 500


def default_n_samples(device) -> int:
    """50,000 on a GPU, 10,000 on a CPU."""
    return DEFAULT_SAMPLES["cuda"] if torch.device(device or "cpu").type == "cuda" else DEFAULT_SAMPLES["cpu"]


@torch.no_grad()
def sample_blocks(model, n: int, seed: int = 0, block: int = SAMPLE_BLOCK, temperature: float = 1.0):
    """Yield ``n`` samples of ``model`` in blocks, as float32 CPU tensors in ``[0, 1]``, at the
    sampling ``temperature`` (the prior's standard deviation scaled by it; Glow §8).

    Block ``b`` is drawn with its own CPU generator seeded from ``(seed, b)``: deterministic, and
    independent of the device. The model is sampled in eval mode and put back in its previous
    mode; no global random state is used.
    """
    was_training = model.training
    model.eval()
    try:
        for b, start in enumerate(range(0, n, block)):
            gen = torch.Generator().manual_seed(mix_seed(seed, b, 11))
            kwargs = {} if temperature == 1.0 else {"temperature": temperature}
            x = model.sample(min(block, n - start), generator=gen, **kwargs)
            yield x.detach().to("cpu", torch.float32)
    finally:
        model.train(was_training)
