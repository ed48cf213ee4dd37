"""Invertible layers. Contract: ``forward(x) -> (z, logdet)``, ``inverse(z) -> x``."""

from .base import Flow, FlowSequence, InverseFlow, sum_except_batch
from .coupling import (
    AdditiveCoupling,
    AffineCoupling,
    AlternatingHalves,
    ChannelHalves,
    Checkerboard,
    Partition,
)
from .elementwise import DiagonalScaling, Logit
from .glow import GlowCoupling, GlowSplitPrior, InvertibleConv1x1
from .normalization import ActNorm, BatchNormFlow
from .priors import Prior, StandardLogistic, StandardNormal, build_prior
from .reshape import FactorOut, Reshape, Squeeze

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "AlternatingHalves",
    "BatchNormFlow",
    "ChannelHalves",
    "Checkerboard",
    "DiagonalScaling",
    "FactorOut",
    "Flow",
    "FlowSequence",
    "GlowCoupling",
    "GlowSplitPrior",
    "InverseFlow",
    "InvertibleConv1x1",
    "Logit",
    "Partition",
    "Prior",
    "Reshape",
    "Squeeze",
    "StandardLogistic",
    "StandardNormal",
    "build_prior",
    "sum_except_batch",
]
