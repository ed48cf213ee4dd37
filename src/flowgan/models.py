"""Flow models: a flow plus a prior, with the public API the rest of flowgan relies on.

``build_model(name, **overrides)`` returns a :class:`FlowModel` for one of the named
configurations in :data:`MODELS`:

=================== ==========================================================================
``nice-mnist``      NICE as in the Flow-GAN MNIST experiments (§3.2, Appendix A; Dinh et al.
                    2014): logit step (a = 1e-7), pixels in alternating halves, 4 additive
                    couplings, each net 392→1000, five 1000→1000 layers, →392 (ReLU), with
                    the original code's batch normalisation before every linear layer
                    (``norm="batch"``, :class:`~flowgan.nets.ScalarBatchNorm`; ``norm="none"``
                    leaves it out), a diagonal scaling, standard logistic prior.
``nice-small``      the same with 256-unit, 2-layer nets: trains in minutes on a CPU.
``realnvp-cifar10`` Real-NVP as in the CIFAR-10 experiments (Dinh et al. 2017): 2 scales; 3
                    checkerboard affine couplings, squeeze, 3 channel couplings, factor-out of
                    half the channels; then 4 checkerboard couplings; ResNet s/t nets with 64
                    channels and 8 blocks; standard normal prior.
``realnvp-small``   the same with 32 channels and 1 block.
``glow-cifar10``    Glow (Kingma & Dhariwal 2018) as in its CIFAR-10 experiments: logit step,
                    3 levels of squeeze, 32 steps of actnorm, invertible 1×1 convolution (LU)
                    and affine coupling (512-channel nets), and a split with a learned prior
                    (:class:`~flowgan.flows.GlowSplitPrior`) between levels; standard normal.
                    One deviation: the couplings' scale has a floor of 0.05
                    (``scale_floor``; 0 for Glow's own), so Glow trains adversarially.
``glow-mnist``      the same for 28×28 digits: 2 levels, 16 steps, 256 channels.
``glow-small``      2 levels, 4 steps, 64 channels: trains on a CPU.
=================== ==========================================================================

Every configuration works for any image shape ``(C, H, W)`` (``shape=`` override; Real-NVP needs
``H`` and ``W`` divisible by ``2**(scales-1)``, Glow by ``2**levels``). The latent ``z`` has the shape of the data.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .flows import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    AlternatingHalves,
    BatchNormFlow,
    ChannelHalves,
    Checkerboard,
    DiagonalScaling,
    FactorOut,
    Flow,
    FlowSequence,
    GlowCoupling,
    GlowSplitPrior,
    InverseFlow,
    InvertibleConv1x1,
    Logit,
    Reshape,
    Squeeze,
    build_prior,
)
from .nets import MLP, GlowNet, ResNet


@dataclass(frozen=True)
class NICEConfig:
    """NICE (Dinh et al. 2014) for images flattened to vectors of ``D = C·H·W`` pixels."""

    shape: tuple[int, int, int] = (1, 28, 28)
    couplings: int = 4
    hidden: int = 1000
    depth: int = 5  # number of hidden→hidden layers in each coupling net
    norm: str = "batch"  # normalization inside the coupling nets: "batch" (the original's) or "none"
    prior: str = "logistic"
    alpha: float = 1e-7


@dataclass(frozen=True)
class RealNVPConfig:
    """Multi-scale Real-NVP (Dinh et al. 2017) with affine couplings and ResNet s/t nets."""

    shape: tuple[int, int, int] = (3, 32, 32)
    scales: int = 2
    checkerboard_couplings: int = 3  # per scale, before the squeeze
    channel_couplings: int = 3  # per scale, after the squeeze
    final_couplings: int = 4  # checkerboard couplings of the last scale
    channels: int = 64
    blocks: int = 8
    norm: str = "batch"  # normalization inside the s/t ResNets: "batch" or "none"
    flow_norm: str = "none"  # normalization layer after each coupling: "none", "batch", "actnorm"
    prior: str = "normal"
    alpha: float = 1e-7


@dataclass(frozen=True)
class GlowConfig:
    """Multi-scale Glow (Kingma & Dhariwal 2018, §3, Figure 2): per level a squeeze, ``steps`` ×
    (actnorm, invertible 1×1 convolution, affine coupling), then a split with a learned prior."""

    shape: tuple[int, int, int] = (3, 32, 32)
    levels: int = 3
    steps: int = 32
    hidden: int = 512  # channels of the coupling networks
    lu: bool = True  # LU-parametrised 1×1 convolutions (Glow's); False: the plain matrix
    prior: str = "normal"
    alpha: float = 1e-7
    # lower bound of the couplings' scale, so generating multiplies by at most 1/0.05 = 20 per
    # coupling (0: Glow's own coupling, which overflows when trained adversarially; GlowCoupling)
    scale_floor: float = 0.05


ARCHITECTURES: dict[str, type] = {"nice": NICEConfig, "realnvp": RealNVPConfig, "glow": GlowConfig}

#: name -> (architecture, overrides of that architecture's defaults)
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "nice-mnist": ("nice", {}),
    "nice-small": ("nice", {"hidden": 256, "depth": 2}),
    "realnvp-cifar10": ("realnvp", {}),
    "realnvp-small": ("realnvp", {"channels": 32, "blocks": 1}),
    "glow-cifar10": ("glow", {}),
    "glow-mnist": ("glow", {"shape": (1, 28, 28), "levels": 2, "steps": 16, "hidden": 256}),
    "glow-small": ("glow", {"levels": 2, "steps": 4, "hidden": 64}),
}


def device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of a module's first parameter (or buffer), else CPU/default."""
    for t in (*module.parameters(), *module.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.get_default_dtype()


class FlowModel(nn.Module):
    r"""A normalizing flow ``f`` from images to latents with a factorised prior ``p_Z``.

    ``log_prob(x) = log p_Z(f(x)) + log|det ∂f(x)/∂x|`` (Eq. 6 of the paper) in nats, for
    continuous images ``x ∈ [0, 1]`` of shape ``(N, C, H, W)``; the logit step is part of ``f``.
    The generator is ``G = f⁻¹``: ``decode(z) = G(z)`` and ``sample(n) = G(z), z ~ p_Z``. Both
    are differentiable, so adversarial losses backpropagate into the flow's parameters.
    """

    def __init__(self, flow: Flow, prior: nn.Module, shape: tuple[int, ...], spec: dict | None = None):
        super().__init__()
        self.flow = flow
        self.prior = prior
        self._shape = tuple(int(s) for s in shape)
        #: ``{"name": ..., "overrides": {...}}``: enough to rebuild the model from a checkpoint.
        self.spec = spec or {}

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape ``(C, H, W)`` of one image (and of one latent)."""
        return self._shape

    @property
    def dim(self) -> int:
        return math.prod(self._shape)

    def _check(self, x: torch.Tensor, what: str) -> None:
        if tuple(x.shape[1:]) != self._shape:
            raise ValueError(f"{what} must have shape (N, {', '.join(map(str, self._shape))}), got {tuple(x.shape)}")

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density (nats) of continuous images ``x`` in ``[0, 1]``; shape ``(N,)``."""
        self._check(x, "images")
        z, logdet = self.flow(x)
        return self.prior.log_prob(z) + logdet

    def forward(
        self, x: torch.Tensor | None = None, z: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(log_prob(x), decode(z))`` in one call, ``None`` for an input not given.

        Training objectives call the model once per update through this method, which is what
        ``DistributedDataParallel`` needs to synchronise gradients of both directions.
        """
        return (None if x is None else self.log_prob(x)), (None if z is None else self.decode(z))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``z = f(x)``."""
        self._check(x, "images")
        return self.flow(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``x = G(z) = f⁻¹(z)``; differentiable."""
        self._check(z, "latents")
        return self.flow.inverse(z)

    def decode_and_logdet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(G(z), log|det ∂G/∂z|)``: the generator's log-determinant computed layer by layer on the
        way from ``z`` (finite even where pixels saturate at 0 or 1, unlike ``-flow(G(z))[1]``)."""
        self._check(z, "latents")
        return self.flow.inverse_and_logdet(z)

    def sample_latent(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """``n`` prior samples on the model's device and dtype (drawn on ``generator``'s device),
        the prior's scale multiplied by ``temperature`` (see :mod:`flowgan.flows.priors`: the
        standard deviation of a normal prior, the scale of a logistic one; 0 gives ``z = 0``)."""
        device, dtype = device_dtype(self)
        where = generator.device if generator is not None else device
        shape = (n, *self._shape)
        z = self.prior.sample(shape, device=where, dtype=dtype, generator=generator, temperature=temperature)
        return z.to(device)

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """``n`` images ``G(z)``, ``z ~ p_Z`` at ``temperature`` (1: the prior itself; 0: ``decode(0)``),
        clamped to ``[0, 1]``; differentiable."""
        return self.decode(self.sample_latent(n, generator, temperature)).clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# builders


def _nice(cfg: NICEConfig) -> Flow:
    d = math.prod(cfg.shape)
    layers: list[Flow] = [Logit(cfg.alpha), Reshape(cfg.shape, (d,))]
    for i in range(cfg.couplings):
        parity = i % 2
        n_cond, n_change = AlternatingHalves.sizes(d, parity)
        net = MLP(n_cond, n_change, cfg.hidden, cfg.depth, cfg.norm)
        layers.append(AdditiveCoupling(AlternatingHalves(parity), net))
    layers += [DiagonalScaling((d,)), Reshape((d,), cfg.shape)]
    return FlowSequence(*layers)


def _flow_norm(kind: str, channels: int) -> list[Flow]:
    if kind == "none":
        return []
    if kind == "batch":
        return [BatchNormFlow(channels)]
    if kind == "actnorm":
        return [ActNorm(channels)]
    raise ValueError(f"unknown flow_norm {kind!r}; choose 'none', 'batch' or 'actnorm'")


def _realnvp_scale(cfg: RealNVPConfig, shape: tuple[int, int, int], level: int) -> list[Flow]:
    c, h, w = shape

    def checkerboard(i: int) -> list[Flow]:
        net = ResNet(c, 2 * c, cfg.channels, cfg.blocks, cfg.norm)
        return [AffineCoupling(Checkerboard(i % 2), net, (c, 1, 1)), *_flow_norm(cfg.flow_norm, c)]

    if level == cfg.scales - 1:
        return [layer for i in range(cfg.final_couplings) for layer in checkerboard(i)]
    layers = [layer for i in range(cfg.checkerboard_couplings) for layer in checkerboard(i)]
    layers.append(Squeeze())
    c4 = 4 * c
    for i in range(cfg.channel_couplings):
        n_cond, n_change = ChannelHalves.sizes(c4, i % 2)
        net = ResNet(n_cond, 2 * n_change, cfg.channels, cfg.blocks, cfg.norm)
        layers += [AffineCoupling(ChannelHalves(i % 2), net, (n_change, 1, 1)), *_flow_norm(cfg.flow_norm, c4)]
    inner_shape = (c4 - c4 // 2, h // 2, w // 2)
    layers += [FactorOut(FlowSequence(*_realnvp_scale(cfg, inner_shape, level + 1))), InverseFlow(Squeeze())]
    return layers


def _realnvp(cfg: RealNVPConfig) -> Flow:
    c, h, w = cfg.shape
    factor = 2 ** (cfg.scales - 1)
    if cfg.scales < 1 or h % factor or w % factor:
        raise ValueError(f"Real-NVP with {cfg.scales} scales needs H and W divisible by {factor}, got {h}x{w}")
    return FlowSequence(Logit(cfg.alpha), *_realnvp_scale(cfg, cfg.shape, 0))


def _glow_level(cfg: GlowConfig, shape: tuple[int, int, int], level: int) -> list[Flow]:
    c4, h, w = 4 * shape[0], shape[1] // 2, shape[2] // 2
    layers: list[Flow] = [Squeeze()]
    for _ in range(cfg.steps):
        n_cond, n_change = ChannelHalves.sizes(c4, 0)
        net = GlowNet(n_cond, 2 * n_change, cfg.hidden)
        coupling = GlowCoupling(net, parity=0, scale_floor=cfg.scale_floor)
        layers += [ActNorm(c4), InvertibleConv1x1(c4, lu=cfg.lu), coupling]
    if level < cfg.levels - 1:
        inner = FlowSequence(*_glow_level(cfg, (c4 - c4 // 2, h, w), level + 1))
        layers += [GlowSplitPrior(c4), FactorOut(inner)]
    return [*layers, InverseFlow(Squeeze())]


def _glow(cfg: GlowConfig) -> Flow:
    c, h, w = cfg.shape
    factor = 2**cfg.levels
    if cfg.levels < 1 or cfg.steps < 1 or h % factor or w % factor:
        raise ValueError(
            f"Glow with {cfg.levels} levels squeezes {cfg.levels} times and needs H and W divisible by {factor}, "
            f"got shape {c}x{h}x{w} (fewer levels, or another image size)"
        )
    return FlowSequence(Logit(cfg.alpha), *_glow_level(cfg, cfg.shape, 0))


_BUILDERS = {"nice": _nice, "realnvp": _realnvp, "glow": _glow}


def model_config(name: str, **overrides: Any):
    """The resolved (frozen) configuration of model ``name`` with ``overrides`` applied."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")
    arch, defaults = MODELS[name]
    cls = ARCHITECTURES[arch]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"model {name!r} has no option(s) {sorted(unknown)}; options: {sorted(fields)}")
    values = {**defaults, **overrides}
    if "shape" in values:
        shape = tuple(int(s) for s in values["shape"])
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be (C, H, W), got {values['shape']}")
        values["shape"] = shape
    return cls(**values)


#: Version of ``model.spec``. 1 (no ``version`` key): written before NICE's coupling networks
#: were normalised, so a version-1 NICE spec without a ``norm`` override means ``norm="none"``.
#: 2: written before Glow's couplings had a scale floor, so a Glow spec of version 1 or 2 without
#: a ``scale_floor`` override means ``scale_floor=0``.
SPEC_VERSION = 3


def build_model(name: str, **overrides: Any) -> FlowModel:
    """Build the named flow model (see :data:`MODELS`), e.g. ``build_model("nice-mnist")`` or
    ``build_model("realnvp-small", shape=(1, 28, 28))``."""
    cfg = model_config(name, **overrides)
    arch = MODELS[name][0]
    flow = _BUILDERS[arch](cfg)
    plain = {k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()}
    spec = {"name": name, "overrides": plain, "version": SPEC_VERSION}
    return FlowModel(flow, build_prior(cfg.prior), cfg.shape, spec=spec)


def spec_overrides(spec: dict) -> dict[str, Any]:
    """The build overrides a stored ``model.spec`` stands for, with the defaults of the flowgan
    version that wrote it: a NICE spec of version 1 had un-normalised coupling networks, a Glow
    spec of version 1 or 2 couplings without a scale floor."""
    overrides = dict(spec.get("overrides", {}))
    name = spec["name"]
    version, arch = spec.get("version", 1), MODELS.get(name, ("",))[0]
    if version < 2 and arch == "nice":
        overrides.setdefault("norm", "none")
    if version < 3 and arch == "glow":
        overrides.setdefault("scale_floor", 0.0)
    return overrides


def model_from_spec(spec: dict) -> FlowModel:
    """Rebuild a model from ``model.spec`` (as stored in checkpoints, of any spec version)."""
    return build_model(spec["name"], **spec_overrides(spec))
