"""flowgan: Flow-GANs (Grover, Dhar & Ermon, AAAI 2018) in PyTorch.

A Flow-GAN is a GAN whose generator is a normalizing flow, so the same model has an exact
likelihood and can be trained by maximum likelihood, adversarially, or by the hybrid objective.

Public API (imported lazily, so ``import flowgan`` and ``flowgan --help`` stay fast)::

    model = flowgan.build_model("nice-mnist")        # or nice-small, realnvp-cifar10, realnvp-small
    log_p = model.log_prob(x)                         # x in [0, 1], shape (N, C, H, W)
    data = flowgan.load_dataset("mnist5k")
    flowgan.nll(model, data.test.images, "bpd")       # exact, deterministic NLL of uint8 images

Flows of other libraries over ``D = C·H·W`` features become generators of images (the same logit
step and NLL units as flowgan's models; needs ``pip install 'flowgan[flows]'``)::

    model = flowgan.from_zuko(zuko.flows.NSF(features=784), (1, 28, 28))
    model = flowgan.from_normflows(nf.NormalizingFlow(q0, flows), (1, 28, 28))

Any generator meeting :class:`flowgan.Generator` (``shape``, ``log_prob(x)``, ``sample(n, generator=,
temperature=)``; docs/generators.md) trains with any critic ``nn.Module`` and data as tensors::

    flowgan.train(flowgan.TrainConfig(objective="wgan-gp", lam=1.0), "runs/mine", model=model, critic=..., data=...)
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

_EXPORTS = {
    "build_model": "flowgan.models",
    "model_config": "flowgan.models",
    "model_from_spec": "flowgan.models",
    "FlowModel": "flowgan.models",
    "from_zuko": "flowgan.adapters",
    "from_normflows": "flowgan.adapters",
    "MODELS": "flowgan.models",
    "nll": "flowgan.likelihood",
    "nll_report": "flowgan.likelihood",
    "log_likelihoods": "flowgan.likelihood",
    "nats_to_bpd": "flowgan.likelihood",
    "bpd_to_nats": "flowgan.likelihood",
    "dequantize": "flowgan.likelihood",
    "load_dataset": "flowgan.data",
    "ImageDataset": "flowgan.data",
    "FlowganError": "flowgan.errors",
    "CapabilityError": "flowgan.errors",
    "interpolate": "flowgan.interpolation",
    "Generator": "flowgan.generator",
    "load_checkpoint": "flowgan.checkpoint",
    "load_model": "flowgan.checkpoint",
    "load_run": "flowgan.runs",
    "Run": "flowgan.runs",
    "TrainConfig": "flowgan.config",
    "train": "flowgan.training",
    "GaussianMixtureBaseline": "flowgan.analysis.gmm",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flowgan' has no attribute {name!r}")


def __dir__():
    return __all__
