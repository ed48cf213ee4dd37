r"""Flows of other libraries as flowgan generators: :func:`from_zuko` and :func:`from_normflows`.

Both turn a flow over vectors of ``D = C·H·W`` features into a :class:`~flowgan.models.FlowModel`
of images of shape ``(C, H, W)``, whose flow is

    ``FlowSequence(Logit(alpha), Reshape((C, H, W), (D,)), <the library's transform>, Reshape((D,), (C, H, W)))``

and whose prior is the library's base distribution. The logit step and its ``alpha`` (1e-7) are
those of flowgan's own models, so with the same dequantisation (:mod:`flowgan.likelihood`) the NLL
in nats and bits/dim is comparable with ``nice-mnist``'s. The latent has the image's shape, so
``encode``, ``decode``, ``decode_and_logdet``, ``sample_latent`` and ``sample`` all work, and the
library's parameters (those of its base distribution included) are parameters of the model.

Conventions of the libraries (checked against brute-force Jacobians in tests/test_adapters.py):

* zuko: ``flow()`` is a ``NormalizingFlow`` distribution whose ``transform`` maps data ``x`` to
  the latent ``z``; ``transform.call_and_ladj(x)`` gives ``(z, log|det ∂z/∂x|)`` and
  ``transform.inv.call_and_ladj(z)`` gives ``(x, log|det ∂x/∂z|)``.
* normflows: ``model.inverse_and_log_det(x)`` gives ``(z, log|det ∂z/∂x|)``,
  ``model.forward_and_log_det(z)`` gives ``(x, log|det ∂x/∂z|)``.

Only unconditional flows are supported (no context). A model built here has a descriptive
``spec`` (``{"adapter": ..., "class": ..., "shape": ..., "alpha": ...}``) that cannot rebuild it:
save its ``state_dict`` and rebuild the library flow yourself to reload it.
"""

from __future__ import annotations

import math
import operator
from typing import Callable

import torch
from torch import nn

from .errors import FlowganError
from .flows import Flow, FlowSequence, Logit, Prior, Reshape, sum_except_batch
from .models import FlowModel, device_dtype

_EXTRA = "pip install 'flowgan[flows]'"


# --------------------------------------------------------------------------------------------
# the library transforms as flowgan flows (vectors (N, D) in, vectors out)


def _per_sample(logdet: torch.Tensor, n: int) -> torch.Tensor:
    """A log-determinant as one value per sample: sums element-wise terms, broadcasts scalars."""
    if logdet.dim() > 1:
        return sum_except_batch(logdet)
    return logdet.expand(n)


class ZukoTransform(Flow):
    """A zuko flow's transform ``x -> z`` (the ``flow`` is a registered submodule, base included)."""

    def __init__(self, flow: nn.Module):
        super().__init__()
        self.flow = flow

    def _transform(self):
        return self.flow().transform

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, ladj = self._transform().call_and_ladj(x)
        return z, _per_sample(ladj, x.shape[0])

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self._transform().inv(z)

    def inverse_and_logdet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, ladj = self._transform().inv.call_and_ladj(z)
        return x, _per_sample(ladj, z.shape[0])


class NormflowsTransform(Flow):
    """A normflows ``NormalizingFlow``'s map ``x -> z`` (``inverse_and_log_det``) and back."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, log_det = self.model.inverse_and_log_det(x)
        return z, _per_sample(log_det, x.shape[0])

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.forward(z)

    def inverse_and_logdet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, log_det = self.model.forward_and_log_det(z)
        return x, _per_sample(log_det, z.shape[0])


# --------------------------------------------------------------------------------------------
# the library base distributions as flowgan priors (image-shaped latents)


def _forked_draw(draw: Callable[[], torch.Tensor], generator: torch.Generator | None, device: torch.device):
    """``draw()`` (which samples from the global RNG) made reproducible from ``generator``: run
    under ``torch.random.fork_rng`` with the global RNG (CPU, and ``device`` if CUDA) seeded from
    an integer drawn from ``generator``; the global RNG state is left as it was."""
    if generator is None:
        return draw()
    seed = int(torch.randint(0, 2**63 - 1, (), generator=generator, device=generator.device))
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        return draw()


class LibraryPrior(Prior):
    r"""A library's base distribution over ``R^D`` as a prior over image-shaped latents.

    ``log_prob(z)`` flattens ``z`` of shape ``(N, C, H, W)`` to ``(N, D)``; one value per sample.

    ``sample(shape, *, device, dtype, generator, temperature=1.0)`` is reproducible from a
    ``torch.Generator``. For a diagonal Gaussian base it draws ``loc + T·scale·ε`` with
    ``ε = randn(generator=generator)`` (differentiable in ``loc`` and ``scale``, so a trainable
    base trains adversarially too). Any other base samples itself (``rsample`` where it can) from
    the global RNG under ``torch.random.fork_rng``, seeded from an integer drawn from
    ``generator``. The temperature ``T`` scales the standard deviation: the draw is
    ``μ + T·(z₀ - μ)`` about the base's mean ``μ`` (``T = 0`` gives the mean, ``T = 1`` the base
    itself); a non-Gaussian base without a known mean supports only ``T = 1``.
    """

    library = "library"

    def __init__(self, base: nn.Module, dim: int):
        super().__init__()
        self.base = base  # shared with the wrapped flow: parameters count once, train once
        self.dim = int(dim)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return _per_sample(self._log_prob_flat(z.reshape(z.shape[0], -1)), z.shape[0])

    def sample(self, shape, *, device=None, dtype=None, generator=None, temperature: float = 1.0) -> torch.Tensor:
        shape = tuple(shape)
        n, d = shape[0], math.prod(shape[1:])
        if d != self.dim:
            raise FlowganError(f"{self.library} prior draws {self.dim} features, asked for shape {shape}")
        gaussian = self._gaussian()
        ref = gaussian[0] if gaussian is not None else next(iter(self._tensors()), torch.empty(0))
        if device is None:
            device = generator.device if generator is not None else ref.device
        dtype = dtype or (ref.dtype if ref.is_floating_point() else torch.get_default_dtype())
        if gaussian is not None:
            loc, scale = gaussian
            eps = torch.randn((n, d), device=device, dtype=dtype, generator=generator)
            z = loc.to(eps).reshape(1, d) + temperature * scale.to(eps).reshape(1, d) * eps
        else:
            z0 = _forked_draw(lambda: self._draw(n), generator, ref.device).to(device=device, dtype=dtype)
            if temperature != 1.0:
                mean = self._mean(z0)
                z0 = mean + temperature * (z0 - mean)
            z = z0
        return z.reshape(shape)

    def _tensors(self):
        return [*self.base.parameters(), *self.base.buffers()]

    def _mean(self, like: torch.Tensor) -> torch.Tensor:
        raise FlowganError(
            f"temperature != 1 needs a Gaussian base or one with a mean; this {self.library} base has none"
        )

    # the library-specific part
    def _log_prob_flat(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _gaussian(self) -> tuple[torch.Tensor, torch.Tensor] | None:  # pragma: no cover
        """``(loc, scale)`` of a diagonal Gaussian base, each with ``D`` elements; else ``None``."""
        raise NotImplementedError

    def _draw(self, n: int) -> torch.Tensor:  # pragma: no cover
        """``n`` samples ``(n, D)`` from the global RNG."""
        raise NotImplementedError


class ZukoPrior(LibraryPrior):
    """The base of a zuko flow (its ``base`` LazyDistribution, e.g. ``DiagNormal``)."""

    name = library = "zuko"

    def _log_prob_flat(self, z):
        return self.base().log_prob(z)

    def _gaussian(self):
        dist = self.base()
        inner = dist.base_dist if isinstance(dist, torch.distributions.Independent) else dist
        if (
            not isinstance(inner, torch.distributions.Normal)
            or math.prod(dist.event_shape) * math.prod(dist.batch_shape) != self.dim
        ):
            return None
        return inner.loc.expand(inner.batch_shape).reshape(-1), inner.scale.expand(inner.batch_shape).reshape(-1)

    def _draw(self, n):
        dist = self.base()
        z = dist.rsample((n,)) if dist.has_rsample else dist.sample((n,))
        return z.reshape(n, -1)

    def _mean(self, like):
        try:
            return self.base().mean.reshape(1, -1).to(like)
        except NotImplementedError:
            return super()._mean(like)


class NormflowsPrior(LibraryPrior):
    """The base ``q0`` of a normflows model; ``DiagGaussian`` (``loc``, ``log_scale``, and its own
    ``temperature`` attribute, which scales its standard deviation) is sampled directly."""

    name = library = "normflows"

    def __init__(self, base: nn.Module, dim: int, gaussian: bool):
        super().__init__(base, dim)
        self.is_diag_gaussian = bool(gaussian)

    def _log_prob_flat(self, z):
        return self.base.log_prob(z)

    def _gaussian(self):
        if not self.is_diag_gaussian:
            return None
        scale = torch.exp(self.base.log_scale) * (getattr(self.base, "temperature", None) or 1.0)
        return self.base.loc.reshape(-1), scale.reshape(-1)

    def _draw(self, n):
        return self.base.sample(n).reshape(n, -1)


# --------------------------------------------------------------------------------------------
# construction


def _image_shape(shape) -> tuple[int, int, int]:
    try:
        out = tuple(operator.index(s) for s in shape)
    except TypeError:
        out = ()
    if len(out) != 3 or min(out) < 1:
        raise FlowganError(f"shape must be (C, H, W) of positive ints, got {shape!r}")
    return out


def _probe(module: nn.Module, run: Callable, dim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of ``(z, log p_base(z))`` from ``run`` on a zero batch ``(2, dim)``, evaluated without
    a trace: no gradients, eval mode, and the module's state (buffers such as data-dependent
    initialisation flags) restored afterwards."""
    device, dtype = device_dtype(module)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    modes = {m: m.training for m in module.modules()}
    try:
        with torch.no_grad():
            module.eval()
            z, log_p = run(torch.zeros(2, dim, device=device, dtype=dtype))
            return tuple(z.shape), tuple(log_p.shape)
    finally:
        module.load_state_dict(state)
        for m, mode in modes.items():
            m.train(mode)


def _check_probe(who: str, module: nn.Module, run, shape: tuple[int, ...], dim: int, hint: str = "") -> None:
    """A one-line :class:`FlowganError` unless the flow maps ``(2, D)`` to ``(2, D)`` latents that
    its base evaluates to one log-density per sample (or per feature)."""
    try:
        z_shape, log_p_shape = _probe(module, run, dim)
    except Exception as e:  # any failure of the library's code on D features is the user's mismatch
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise FlowganError(
            f"{who}: the flow or its base fails on a batch of D = {dim} features for shape {shape}{hint}: {first}"
        ) from None
    if z_shape != (2, dim) or log_p_shape not in ((2,), (2, dim)):
        raise FlowganError(
            f"{who}: shape {shape} needs a flow over D = {dim} features, got latents of shape {z_shape[1:]}"
            f" with base log-densities of shape {log_p_shape[1:]}"
        )


def _zuko_run(flow: nn.Module) -> Callable:
    def run(x):
        dist = flow()
        z = dist.transform(x)
        return z, dist.base.log_prob(z)

    return run


def _normflows_run(model: nn.Module) -> Callable:
    def run(x):
        z = model.inverse_and_log_det(x)[0]
        return z, model.q0.log_prob(z)

    return run


def _model(flow: Flow, prior: Prior, shape, alpha: float, adapter: str, cls: type) -> FlowModel:
    d = math.prod(shape)
    seq = FlowSequence(Logit(alpha), Reshape(shape, (d,)), flow, Reshape((d,), shape))
    spec = {"adapter": adapter, "class": cls.__qualname__, "shape": list(shape), "alpha": alpha}
    return FlowModel(seq, prior, shape, spec=spec)


def _alpha(alpha) -> float:
    if not 0.0 <= float(alpha) < 0.5:
        raise FlowganError(f"logit alpha must lie in [0, 0.5), got {alpha}")
    return float(alpha)


def from_zuko(flow: nn.Module, shape, *, alpha: float = 1e-7) -> FlowModel:
    """A flowgan generator of images of ``shape = (C, H, W)`` from an unconditional zuko flow over
    ``D = C·H·W`` features (e.g. ``zuko.flows.NSF(features=D)``); see the module docstring.

    The zuko flow becomes a submodule of the model: its parameters train with it. A conditional
    flow (``context > 0``) fails on the check without context and is refused.
    """
    try:
        import zuko
    except ImportError:
        raise FlowganError(f"from_zuko needs zuko: {_EXTRA}") from None
    shape, alpha = _image_shape(shape), _alpha(alpha)
    d = math.prod(shape)
    if not isinstance(flow, zuko.lazy.LazyDistribution):
        raise FlowganError(f"from_zuko needs a zuko flow (zuko.flows.Flow), got {type(flow).__name__}")
    dist = flow()
    if not isinstance(dist, zuko.distributions.NormalizingFlow):
        raise FlowganError(f"from_zuko needs a flow whose flow() is a NormalizingFlow, got {type(dist).__name__}")
    if tuple(dist.event_shape) != (d,):
        raise FlowganError(
            f"from_zuko: shape {shape} needs a flow over D = {d} features, got one over {tuple(dist.event_shape)}"
        )
    hint = "; is it conditional? only unconditional flows are supported"
    _check_probe("from_zuko", flow, _zuko_run(flow), shape, d, hint)
    if not isinstance(flow.base, nn.Module):
        raise FlowganError(f"from_zuko needs the flow's base as a module, got {type(flow.base).__name__}")
    return _model(ZukoTransform(flow), ZukoPrior(flow.base, d), shape, alpha, "zuko", type(flow))


def from_normflows(model: nn.Module, shape, *, alpha: float = 1e-7) -> FlowModel:
    """A flowgan generator of images of ``shape = (C, H, W)`` from a normflows
    ``nf.NormalizingFlow`` over ``D = C·H·W`` features (flows on ``(N, D)``, base ``q0`` over
    ``(D,)``, e.g. ``nf.distributions.DiagGaussian(D)``); see the module docstring.

    The model and its base become submodules: their parameters (a trainable base's ``loc`` and
    ``log_scale`` included) train with it. Conditional models (``ConditionalNormalizingFlow``,
    ``ClassCondFlow``) and multi-scale ones (``MultiscaleFlow``) are refused.
    """
    try:
        import normflows as nf
    except ImportError:
        raise FlowganError(f"from_normflows needs normflows: {_EXTRA}") from None
    shape, alpha = _image_shape(shape), _alpha(alpha)
    d = math.prod(shape)
    if not isinstance(model, nf.NormalizingFlow) or isinstance(model, nf.ConditionalNormalizingFlow):
        raise FlowganError(f"from_normflows needs an unconditional nf.NormalizingFlow, got {type(model).__name__}")
    q0 = model.q0
    if not isinstance(q0, nn.Module):
        raise FlowganError(f"from_normflows needs a base distribution q0 (a module), got {type(q0).__name__}")
    base_shape = getattr(q0, "shape", None)
    if base_shape is not None and tuple(base_shape) != (d,):
        raise FlowganError(
            f"from_normflows: shape {shape} needs a flow over D = {d} features, got a base over {tuple(base_shape)}"
        )
    _check_probe("from_normflows", model, _normflows_run(model), shape, d)
    gaussian = isinstance(q0, nf.distributions.DiagGaussian)
    return _model(NormflowsTransform(model), NormflowsPrior(q0, d, gaussian), shape, alpha, "normflows", type(model))
