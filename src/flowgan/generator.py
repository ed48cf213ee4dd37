r"""The generator protocol: what a model must provide to be trained and evaluated as a Flow-GAN.

A Flow-GAN's generator is a model with an exact likelihood (Grover et al. 2018, §3): the same
network is scored by ``log p(x)`` (MLE, the hybrid's NLL term, every NLL in a report) and sampled
from (the critic's fakes, the sample scores). flowgan's own flows (:class:`flowgan.models.FlowModel`),
the adapted zuko and normflows flows (:func:`flowgan.from_zuko`, :func:`flowgan.from_normflows`)
and any ``torch.nn.Module`` of a researcher's own that has the three members of
:class:`Generator` can be passed to ``flowgan.train(config, out, model=...)``.

Required (checked by :func:`check_generator` before training starts; a missing member is refused
with a one-line error that names it):

=============================================== ==============================================
``shape``                                       ``(C, H, W)`` of one image
``log_prob(x) -> (N,)``                         exact log-density in nats of images ``x`` in
                                                ``[0, 1]``, shape ``(N, C, H, W)`` (continuous:
                                                flowgan dequantizes ``x = (k + u) / 256``);
                                                differentiable in the parameters
``sample(n, generator=None, temperature=1.0)``  ``n`` images in ``[0, 1]`` drawn with the
                                                randomness of ``generator`` (a
                                                ``torch.Generator``: same seed, same images);
                                                differentiable in the parameters (adversarial
                                                training backpropagates through it)
=============================================== ==============================================

Optional capabilities (:data:`CAPABILITIES`), needed by some analyses only; an analysis that
needs one the generator lacks says so in one line (:func:`require`, a
:class:`~flowgan.errors.CapabilityError`, exit 2 from the CLI):

``encode(x) -> z`` and ``decode(z) -> x``
    the flow ``f`` and the generator ``G = f⁻¹`` (latent interpolation, the sample grid from fixed
    latents);
``decode_and_logdet(z) -> (x, log|det ∂G/∂z|)``
    the generator's log-determinant (the Jacobian analysis, Figure 4);
``prior``
    the latent distribution: ``prior.log_prob(z) -> (N,)`` and
    ``prior.sample(shape, generator=None, dtype=None, temperature=1.0)`` (AIS, Jacobian spectra
    at prior samples).

With ``decode`` and ``prior`` training draws latents from the prior and decodes them (so a
batch's noise is a tensor, resumed bit for bit); without them each batch's fakes are
``sample(n, generator=g)`` with ``g`` seeded from the run's own random stream, which is just as
reproducible.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from .errors import CapabilityError, FlowganError


@runtime_checkable
class Generator(Protocol):
    """A model with an exact likelihood that can be sampled (see the module docstring)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def log_prob(self, x: torch.Tensor) -> torch.Tensor: ...

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor: ...


#: the required members and how the error names them
REQUIRED = {"shape": "shape", "log_prob": "log_prob(x)", "sample": "sample(n, generator=None, temperature=1.0)"}
#: the optional capabilities and what each is for
CAPABILITIES = {
    "encode": "encode(x) -> z",
    "decode": "decode(z) -> x",
    "decode_and_logdet": "decode_and_logdet(z) -> (x, logdet)",
    "prior": "a latent prior with log_prob(z) and sample(shape, generator=, dtype=)",
}


def describe(module) -> str:
    """A short name of a module for messages: its class, or the adapted library's flow."""
    spec = getattr(module, "spec", None)
    if isinstance(spec, dict) and spec.get("adapter"):
        return f"{spec['adapter']} {spec.get('class', type(module).__name__)}"
    return type(module).__name__


def check_generator(model, shape: tuple[int, ...] | None = None) -> None:
    """Refuse, in one line, a model that cannot be trained as a generator: not an ``nn.Module``
    with parameters, a required member missing, or an image shape other than the data's."""
    name = describe(model)
    if not isinstance(model, nn.Module):
        raise FlowganError(f"generator {name} is not a torch.nn.Module (its parameters must train and be saved)")
    for member, text in REQUIRED.items():
        value = getattr(model, member, None)
        if value is None or (member != "shape" and not callable(value)):
            raise FlowganError(
                f"generator {name} has no {text}; a generator needs shape, log_prob(x) and "
                "sample(n, generator=None, temperature=1.0) (see docs/generators.md)"
            )
    try:
        own = tuple(int(s) for s in model.shape)
    except (TypeError, ValueError):
        raise FlowganError(f"generator {name} has shape {model.shape!r}; expected (C, H, W)") from None
    if shape is not None and own != tuple(shape):
        raise FlowganError(f"generator {name} makes images of shape {own}, the data's are {tuple(shape)}")
    if not any(p.requires_grad for p in model.parameters()):
        raise FlowganError(f"generator {name} has no trainable parameters")


def has(model, capability: str) -> bool:
    """Whether ``model`` has the optional ``capability`` (a key of :data:`CAPABILITIES`)."""
    value = getattr(model, capability, None)
    if capability == "prior":
        return (
            value is not None
            and callable(getattr(value, "sample", None))
            and callable(getattr(value, "log_prob", None))
        )
    return callable(value)


def require(model, *capabilities: str, analysis: str) -> None:
    """A one-line :class:`~flowgan.errors.CapabilityError` if ``model`` lacks one of ``capabilities``."""
    missing = [c for c in capabilities if not has(model, c)]
    if missing:
        raise CapabilityError(
            f"{analysis} needs a generator with {', '.join(capabilities)}; {describe(model)} has no "
            f"{', '.join(missing)} (see docs/generators.md)"
        )


def image_dim(model) -> int:
    """``C·H·W`` of the model's images (the ``D`` of bits/dim)."""
    return math.prod(int(s) for s in model.shape)


def has_latents(model) -> bool:
    """Training draws prior latents and decodes them (else: seeded ``sample`` calls)."""
    return has(model, "decode") and has(model, "prior")


def draw_latents(model, n: int, generator: torch.Generator) -> torch.Tensor:
    """The noise of ``n`` fakes, drawn from ``generator``: prior samples ``(n, *shape)`` (float32)
    for a generator with ``decode`` and ``prior``; else ``(n, 1)`` int64 seeds, of which
    :func:`decode_latents` uses the first of a batch (or of a process's shard of it)."""
    if has_latents(model):
        return model.prior.sample((n, *model.shape), generator=generator, dtype=torch.float32)
    return torch.randint(0, 2**62, (n, 1), generator=generator)


def decode_latents(model, z: torch.Tensor) -> torch.Tensor:
    """The fakes of the noise ``z`` of :func:`draw_latents` (differentiable)."""
    if has_latents(model):
        return model.decode(z)
    device = next(model.parameters()).device
    return model.sample(len(z), generator=torch.Generator(device).manual_seed(int(z[0, 0])))


class TrainingView(nn.Module):
    """What the objectives call for a generator that is not a :class:`~flowgan.models.FlowModel`:
    ``forward(x=, z=) -> (log_prob(x), G(z))`` in one call (which data parallelism needs) and
    ``decode(z)``. Holds the generator as ``generator`` (not ``module``: the objectives unwrap
    ``module`` of data-parallel wrappers)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor | None = None, z: torch.Tensor | None = None):
        return (None if x is None else self.generator.log_prob(x)), (None if z is None else self.decode(z))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return decode_latents(self.generator, z)


def training_view(model: nn.Module) -> nn.Module:
    """The module the objectives call: a FlowModel itself (it has ``forward(x=, z=)``), else a
    :class:`TrainingView` of it."""
    from .models import FlowModel

    return model if isinstance(model, FlowModel) else TrainingView(model)
