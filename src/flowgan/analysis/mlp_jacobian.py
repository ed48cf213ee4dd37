"""Exact Jacobians of NICE's coupling networks, pushed forward layer by layer (§5.1, Figure 4).

Used by :mod:`flowgan.analysis.jacobian` for the ``coupling`` method: one large matrix product
per linear layer for all samples, instead of ``vmap(jacfwd)`` of the network.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nets import ScalarBatchNorm


def is_layerwise_mlp(net) -> bool:
    """Whether :func:`mlp_jacobian` handles ``net``: an evaluation-mode ``nn.Sequential`` of Linear,
    ReLU and scalar batch-norm layers whose first non-norm layer is linear."""
    return (
        isinstance(net, nn.Sequential)
        and not net.training
        and all(isinstance(m, (nn.Linear, nn.ReLU, ScalarBatchNorm)) for m in net)
        and isinstance(next((m for m in net if not isinstance(m, ScalarBatchNorm)), None), nn.Linear)
    )


def mlp_jacobian(net: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∂net(x)/∂x, net(x))`` for an MLP of Linear, ReLU and (evaluation-mode) scalar batch-norm
    layers: ``(N, n_out, n_in)``, ``(N, n_out)``.

    The tangents of all samples are stacked into one ``(N·n_in, k)`` matrix and pushed through
    each linear layer with one matrix product; ReLU masks (derivative 0 at 0, like autograd)
    zero the inactive units per sample, in place; a batch norm with its running statistics is
    ``h·a + c`` and scales the tangents by ``a``."""
    n, n_in = x.shape
    h, tangent, scale = x, None, None  # tangent[b, i, :] = ∂h_b/∂x_i (None: scale·I)
    for layer in net:
        if isinstance(layer, ScalarBatchNorm):
            a, c = (t.to(x.dtype) for t in layer.affine())
            h = h * a + c
            if tangent is None:
                scale = a if scale is None else scale * a
            elif tangent.shape[0] == 1:
                tangent = tangent * a
            else:
                tangent.mul_(a)
        elif isinstance(layer, nn.Linear):
            w = layer.weight.to(x.dtype)
            h = nn.functional.linear(h, w, None if layer.bias is None else layer.bias.to(x.dtype))
            if tangent is None:
                # (1, n_in, k): the same for every sample until masked
                tangent = (w.T if scale is None else w.T * scale).unsqueeze(0)
            else:
                if tangent.shape[0] == 1:
                    tangent = tangent.expand(n, *tangent.shape[1:])
                tangent = (tangent.reshape(n * n_in, -1) @ w.T).reshape(n, n_in, w.shape[0])
        else:
            mask = h > 0
            h = torch.where(mask, h, torch.zeros((), dtype=h.dtype))
            if tangent.shape[0] == 1:
                tangent = tangent * mask.unsqueeze(1).to(tangent.dtype)  # materialises (N, n_in, k)
            else:
                tangent.mul_(mask.unsqueeze(1))
    if tangent.shape[0] == 1:
        tangent = tangent.expand(n, *tangent.shape[1:])
    return tangent.transpose(1, 2), h
