"""Factories of flows from other libraries, for ``flowgan train --model examples/own_flows.py:<name>``.

A factory receives the image shape ``(C, H, W)`` and the ``--model-option`` keyword arguments and
returns a generator (docs/generators.md). Both flows here act on vectors of ``D = C·H·W``
logit-pixels; :func:`flowgan.from_zuko` and :func:`flowgan.from_normflows` add flowgan's logit
step (with its exact log-det) and the image shape, so their NLL is comparable with nice-mnist's.

    flowgan train --dataset mnist5k --model examples/own_flows.py:zuko_nsf --objective wgan-gp --lambda 1
    flowgan train --dataset mnist5k --model examples/own_flows.py:normflows_realnvp --model-option hidden=512
"""

import math

import flowgan


def zuko_nsf(shape, transforms=4, hidden=256, bins=8, passes=2, alpha=0.05):
    """zuko's neural spline flow (Durkan et al. 2019). ``passes=2`` makes each transform a coupling
    (two passes to invert), so sampling -- which adversarial training does at every step -- costs
    two network evaluations per transform instead of ``D``; ``passes=None`` is fully autoregressive.

    The splines act on ``[-5, 5]`` and are the identity outside it, so the logit step squeezes by
    ``alpha = 0.05`` (Real-NVP's value; logits within ±2.94) instead of flowgan's 1e-7 (±16: a
    black pixel's logit would pass every spline unchanged and meet the N(0, 1) base at -16). The
    NLL stays an exact density of the same images, comparable with any other model's."""
    import zuko

    d = math.prod(shape)
    flow = zuko.flows.NSF(features=d, transforms=transforms, hidden_features=[hidden, hidden], bins=bins, passes=passes)
    return flowgan.from_zuko(flow, shape, alpha=alpha)


def normflows_realnvp(shape, blocks=4, hidden=256):
    """A Real-NVP of normflows over vectors: ``blocks`` affine couplings on alternating halves
    (MLP scale and shift nets, zero-initialised last layer), standard normal base."""
    import normflows as nf

    d = math.prod(shape)
    half = d // 2
    flows = []
    for _ in range(blocks):
        net = nf.nets.MLP([half, hidden, hidden, 2 * (d - half)], init_zeros=True)
        flows += [nf.flows.AffineCouplingBlock(net), nf.flows.Permute(d, mode="swap")]
    return flowgan.from_normflows(nf.NormalizingFlow(nf.distributions.DiagGaussian(d, trainable=False), flows), shape)
