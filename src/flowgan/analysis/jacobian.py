r"""Singular values of the generator's Jacobian ``∂G/∂z`` (§5.1, Figures 4 and 8).

The paper explains the poor likelihoods of adversarially trained Flow-GANs by the spectrum of
``J(z) = ∂G(z)/∂z`` at ``K = 64`` prior samples: MLE generators have singular values in a narrow
band, ADV generators spread them over many decades (an ill-conditioned ``J``, i.e. a distribution
squeezed onto a small volume), and ``log|det J| = Σ_i log s_i`` is much lower for ADV (−15588
vs −4170 nats on MNIST). By the change of variables, ``log|det ∂G/∂z| = −log|det ∂f/∂x|`` at
``x = G(z)``: the sum of log singular values must equal minus the flow's own log-determinant, which
:func:`jacobian_spectra` checks for every sample.

**G includes the final sigmoid** of the logit step (``G`` maps to images in ``[0, 1]``), as in the
paper. Saturated pixels (``σ(h)`` near 0 or 1) contribute singular values near ``σ'(h) ≈ e^{−|h|}``,
i.e. tiny ones; they are real and are what makes ``log|det|`` so negative for ADV models.

**Exact computation.** Two methods give the full ``D × D`` Jacobian (no estimates):

* ``"coupling"`` (used automatically when the flow is built from the logit step, reshapes, NICE's
  diagonal scaling and additive couplings with index partitions -- ``nice-*`` models): the
  Jacobian is composed layer by layer in the generator's direction. An additive coupling's
  inverse ``y_b = x_b − t(x_a)`` has Jacobian ``[[I, 0], [−∂t/∂x_a, I]]``; ``∂t/∂x_a`` of the MLP
  is pushed forward through its layers as one large matrix product per layer for all samples,
  with the ReLU masks applied in between. This needs ``D/2`` tangent directions per coupling
  instead of ``D`` for reverse- or forward-mode autodiff of the whole ``G`` (about 2× fewer flops).
* ``"autograd"`` (any flow): ``torch.func.vmap(torch.func.jacrev(G))`` over the samples.

**Precision.** The Jacobian is formed in ``dtype`` (float32 by default: half the time of float64,
relative error of the entries ~1e-6), except the last, diagonal factor -- the sigmoid's
``σ'(h)/(1 − 2a)`` -- which is applied in float64 from ``h`` (so saturated pixels do not underflow
and the graded row scales are exact). Singular values are computed in float64 with LAPACK
(``torch.linalg.svdvals``), several matrices in parallel threads -- or, for well-conditioned
matrices (condition number ≤ 1e4), from the eigenvalues of ``JᵀJ``, about twice as fast and
accurate to a relative 4e-6 (:func:`singular_values`). With ``dtype=torch.float64``
everything is float64. The float32 Jacobian is accurate where the spectrum comes from the row
scaling; the per-sample check against the flow's log-det (reported as ``max_abs_logdet_diff``)
shows when it is not. The flow's log-det is recomputed in float64 at ``x = G(z)``; for pixels
saturated beyond ``|h| ≈ 35`` the round trip through ``x`` itself loses precision (``σ(h)`` is
below float64 resolution next to the logit's ``a = 1e-7``), so a large difference there
indicts the check, not the spectrum.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..generator import require
from .mlp_jacobian import is_layerwise_mlp, mlp_jacobian

#: what the analysis needs of a generator (:mod:`flowgan.generator`): G, prior samples, G's log-det
JACOBIAN_NEEDS = ("decode", "prior", "decode_and_logdet")

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


# --------------------------------------------------------------------------------------------
# layer-wise composition (NICE-type flows)


def _flat_layers(flow) -> list | None:
    from ..flows import (
        AdditiveCoupling,
        AlternatingHalves,
        ChannelHalves,
        DiagonalScaling,
        FlowSequence,
        Logit,
        Reshape,
    )

    out = []
    stack = [flow]
    while stack:
        f = stack.pop(0)
        if isinstance(f, FlowSequence):
            stack = list(f.flows) + stack
        elif isinstance(f, (Logit, Reshape, DiagonalScaling)):
            out.append(f)
        elif isinstance(f, AdditiveCoupling) and isinstance(f.partition, (AlternatingHalves, ChannelHalves)):
            out.append(f)
        else:
            return None
    return out


def supports_coupling_method(model) -> bool:
    """Whether the fast layer-wise method applies to ``model`` (see the module docstring)."""
    flow = getattr(model, "flow", None)
    return flow is not None and _flat_layers(flow) is not None


def _net_jacobian(net, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∂net(c)/∂c, net(c))`` per sample, the Jacobian flattened to ``(N, n_out, n_in)``."""
    n = cond.shape[0]
    if cond.ndim == 2 and is_layerwise_mlp(net):
        return mlp_jacobian(net, cond)
    from torch.func import jacfwd, vmap

    def single(c):
        return net(c.unsqueeze(0)).reshape(-1)

    jac = vmap(jacfwd(single))(cond)
    return jac.reshape(n, jac.shape[1], -1), net(cond)


def _in_dtype(model, dtype: torch.dtype):
    """``model`` itself if its parameters are already in ``dtype``, else a converted copy."""
    p = next(iter(model.parameters()), None)
    return model if p is None or p.dtype == dtype else copy.deepcopy(model).to(dtype)


def _index_split(partition, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.arange(math.prod(shape), dtype=torch.float64).reshape(1, *shape)
    a, b = partition.split(idx)
    return a.reshape(-1).long(), b.reshape(-1).long()


def _block(order_pos: torch.Tensor, idx: torch.Tensor) -> slice | None:
    """The slice of stored rows holding ``idx`` (in order), if they are contiguous."""
    pos = order_pos[idx]
    start = int(pos[0])
    if torch.equal(pos, torch.arange(start, start + len(idx), device=pos.device)):
        return slice(start, start + len(idx))
    return None


@torch.no_grad()
def _coupling_jacobians(model, z: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(J, x)``: exact ``∂G/∂z`` (float64, ``(N, D, D)``) and ``G(z)``, composed layer by layer.

    Rows of the running Jacobian are stored in an order that keeps each coupling's conditioning
    and changed rows in two contiguous blocks (one re-ordering for NICE's alternating halves), so
    the update ``J_change -= M J_cond`` is a single batched product on views."""
    from ..flows import AdditiveCoupling, DiagonalScaling, Logit, Reshape

    model = _in_dtype(model, dtype)
    layers = _flat_layers(model.flow)
    n, d = z.shape[0], math.prod(model.shape)
    h = z.to(dtype)
    dev = h.device
    jac = torch.eye(d, dtype=dtype, device=dev).expand(n, d, d).clone()
    order = torch.arange(d, device=dev)  # stored row r holds the derivative of flat output element order[r]
    pos = torch.arange(d, device=dev)  # inverse permutation: pos[order[r]] = r
    for layer in reversed(layers):
        if isinstance(layer, Reshape):
            h = layer.inverse(h)
        elif isinstance(layer, DiagonalScaling):
            scale = torch.exp(-layer.log_scale.to(jac.dtype)).reshape(-1)[order]
            jac.mul_(scale.view(1, d, 1))
            h = layer.inverse(h)
        elif isinstance(layer, AdditiveCoupling):
            # inverse: y_cond = h_cond, y_change = h_change - t(h_cond)
            cond_idx, change_idx = (i.to(dev) for i in _index_split(layer.partition, tuple(h.shape[1:])))
            a, b = _block(pos, cond_idx), _block(pos, change_idx)
            if a is None or b is None:  # re-order the stored rows: [cond | change | rest]
                rest = torch.ones(d, dtype=torch.bool, device=dev)
                rest[cond_idx] = False
                rest[change_idx] = False
                new_order = torch.cat([cond_idx, change_idx, torch.nonzero(rest).reshape(-1)])
                jac = jac[:, pos[new_order]]
                order, pos = new_order, torch.argsort(new_order)
                a, b = slice(0, len(cond_idx)), slice(len(cond_idx), len(cond_idx) + len(change_idx))
            cond, change = layer.partition.split(h)
            m, shift = _net_jacobian(layer.net, cond.to(jac.dtype))
            jac[:, b] -= torch.bmm(m, jac[:, a])  # (bmm is faster than an in-place baddbmm_ on a view)
            h = layer.partition.merge(cond, change - shift.reshape(change.shape).to(change.dtype))
        elif isinstance(layer, Logit):
            # x = (σ(h) - a)/(1 - 2a): rows scaled by σ'(h)/(1 - 2a), applied in float64.
            h64 = h.to(torch.float64).reshape(n, d)[:, order]
            log_deriv = -nn.functional.softplus(h64) - nn.functional.softplus(-h64) - math.log1p(-2.0 * layer.alpha)
            jac = jac.to(torch.float64) * torch.exp(log_deriv).unsqueeze(2)
            h = layer.inverse(h)
    if not torch.equal(order, torch.arange(d, device=dev)):
        jac = jac[:, pos]
    return jac.to(torch.float64), h


def _autograd_jacobians(model, z: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    from torch.func import jacrev, vmap

    shape = tuple(model.shape)
    m = _in_dtype(model, dtype)

    def g(zf):
        return m.decode(zf.reshape(1, *shape)).reshape(-1)

    zf = z.reshape(z.shape[0], -1).to(dtype)
    with torch.no_grad():
        x = m.decode(zf.reshape(-1, *shape))
    jac = vmap(jacrev(g))(zf)
    return jac.to(torch.float64).detach(), x.detach()


def generator_jacobians(
    model,
    z: torch.Tensor,
    *,
    dtype: torch.dtype = torch.float32,
    method: str = "auto",
    chunk: int = 64,
    progress: bool = False,
) -> tuple[torch.Tensor, str]:
    """Exact Jacobians ``∂G/∂z`` at the latents ``z`` ``(K, *model.shape)``: ``((K, D, D) float64, method)``."""
    require(model, "decode", analysis="the generator's Jacobian")
    if method == "auto":
        method = "coupling" if supports_coupling_method(model) else "autograd"
    if method == "coupling" and not supports_coupling_method(model):
        raise ValueError(
            "the coupling method needs a NICE-type flow (logit, reshape, diagonal scaling, additive couplings)"
        )
    if method not in ("coupling", "autograd"):
        raise ValueError(f"unknown method {method!r}; choose auto, coupling or autograd")
    was_training = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    fn = _coupling_jacobians if method == "coupling" else _autograd_jacobians
    chunk = max(1, int(chunk if method == "coupling" else min(chunk, 4)))
    parts = []
    steps = range(0, len(z), chunk)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"Jacobians ({method})", unit="chunk", leave=False)
    try:
        device = next(iter(model.parameters()), torch.empty(0)).device
        for s in steps:
            parts.append(fn(model, z[s : s + chunk].to(device), dtype)[0])
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)
    return torch.cat(parts), method


#: Largest condition number for which singular values are taken from the eigenvalues of JᵀJ.
GRAM_MAX_CONDITION = 1e4


def _one(jac: torch.Tensor, method: str, max_condition: float) -> tuple[torch.Tensor, bool]:
    """Singular values of one float64 matrix; ``(values descending, whether the Gram path was used)``."""
    if method in ("auto", "gram"):
        lam = torch.linalg.eigvalsh(jac.T @ jac).flip(0)
        if method == "gram" or (lam[-1] > 0 and lam[-1] * max_condition**2 >= lam[0]):
            return lam.clamp_min(0).sqrt(), True
    return torch.linalg.svdvals(jac), False


def _singular_values(
    jac: torch.Tensor, threads: int | None, method: str, max_condition: float
) -> tuple[torch.Tensor, int]:
    from concurrent.futures import ThreadPoolExecutor

    if method not in ("auto", "svd", "gram"):
        raise ValueError(f"unknown singular value method {method!r}; choose auto, svd or gram")
    jac = jac.to(torch.float64)
    threads = max(1, int(threads or torch.get_num_threads()))
    if jac.device.type != "cpu" and method == "svd":
        return torch.linalg.svdvals(jac), 0
    if threads == 1 or len(jac) == 1 or jac.device.type != "cpu":
        out = [_one(j, method, max_condition) for j in jac.unbind(0)]
    else:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(threads) as pool:
                out = list(pool.map(lambda j: _one(j, method, max_condition), jac.unbind(0)))
        finally:
            torch.set_num_threads(previous)
    return torch.stack([v for v, _ in out]), sum(g for _, g in out)


def singular_values(
    jac: torch.Tensor, threads: int | None = None, method: str = "auto", max_condition: float = GRAM_MAX_CONDITION
) -> torch.Tensor:
    r"""Singular values (descending, float64) of a batch of square matrices ``(K, D, D)``.

    ``method="svd"``: LAPACK's SVD (``torch.linalg.svdvals``) of every matrix. ``"auto"``
    (default): first the eigenvalues ``λ`` of the Gram matrix ``JᵀJ`` (about half the time of an
    SVD), used as ``s = √λ`` when the matrix is well conditioned, ``λ_max/λ_min ≤ κ²`` with
    ``κ = max_condition`` (1e4); otherwise the SVD. Squaring costs accuracy only for small
    singular values: eigenvalue errors are about ``D·ε·λ_max`` (forming ``JᵀJ`` and the symmetric
    eigensolver), so every singular value has relative error of about ``D·ε·κ²/2 ≈ 4e-6`` or less
    (``D = 784``; ``tests/test_jacobian.py`` checks it) -- below that of the float32 Jacobian
    itself -- and ill-conditioned matrices, such as adversarially trained generators',
    always take the SVD. (``"gram"`` forces the Gram path, for comparisons only.)

    On the CPU, ``threads`` matrices are processed side by side, each single-threaded: LAPACK
    on one ~800×800 matrix scales badly over threads, so this is about twice as fast on two cores.
    """
    return _singular_values(jac, threads, method, max_condition)[0]


@torch.no_grad()
def flow_logdet_at(model, z: torch.Tensor) -> torch.Tensor:
    """``log|det ∂G/∂z|`` from the flow itself (float64), accumulated layer by layer on the way from
    ``z`` (:meth:`~flowgan.models.FlowModel.decode_and_logdet`). It equals ``−log|det ∂f/∂x|`` at
    ``x = G(z)``, but stays finite where pixels saturate (an adversarially trained generator drives
    some of its logits to hundreds or thousands: ``σ`` rounds to exactly 0 or 1 and the singular
    values of those directions underflow, so ``Σ log s_i`` is ``-inf`` there while the exact value
    is a large finite negative number)."""
    m = copy.deepcopy(model).to(torch.float64).eval()
    device = next(iter(m.parameters()), torch.empty(0)).device
    return m.decode_and_logdet(z.to(device=device, dtype=torch.float64))[1]


@dataclass
class JacobianSpectra:
    """Singular values of ``∂G/∂z`` at ``K`` latents and the log-det checks."""

    singular_values: torch.Tensor  # (K, D) float64, descending
    logdet_flow: torch.Tensor  # (K,) log|det ∂G/∂z| from the flow, layer by layer (float64)
    method: str
    dtype: str
    seconds: dict = field(default_factory=dict)
    n_gram: int = 0  # samples whose singular values came from the Gram matrix (well conditioned)

    @property
    def logdet(self) -> torch.Tensor:
        """``Σ_i log s_i`` per sample (−inf if a singular value is exactly 0)."""
        return torch.log(self.singular_values).sum(1)

    def summary(self) -> dict[str, Any]:
        s = self.singular_values
        logdet = self.logdet
        log10 = torch.log10(s.clamp_min(1e-300)).reshape(-1)
        diff = (logdet - self.logdet_flow).abs()
        q = (
            torch.quantile(log10, torch.tensor(QUANTILES, dtype=torch.float64)).tolist()
            if log10.numel() <= 16_000_000
            else []
        )
        return {
            "n_samples": int(s.shape[0]),
            "dim": int(s.shape[1]),
            "method": self.method,
            "jacobian_dtype": self.dtype,
            "mean_logdet": float(logdet.mean()),
            "std_logdet": float(logdet.std(correction=1)) if len(logdet) > 1 else 0.0,
            "mean_logdet_flow": float(self.logdet_flow.mean()),
            "max_abs_logdet_diff": float(diff.max()),
            "mean_log_singular_value": float(torch.log(s).mean()),
            "log10_singular_value_quantiles": {f"q{round(p * 100):02d}": v for p, v in zip(QUANTILES, q)},
            "log10_singular_value_min": float(log10.min()),
            "log10_singular_value_max": float(log10.max()),
            "median_log10_condition_number": float(torch.log10(s[:, 0] / s[:, -1].clamp_min(1e-300)).median()),
            "zero_singular_values": int((s == 0).sum()),
            "singular_values_from_gram": self.n_gram,
            "seconds": self.seconds,
        }


def jacobian_spectra(
    model,
    n: int = 64,
    *,
    seed: int = 0,
    z: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    method: str = "auto",
    threads: int | None = None,
    check: bool = True,
    svd: str = "auto",
    progress: bool = False,
) -> JacobianSpectra:
    """Exact singular values of ``∂G/∂z`` at ``n`` prior samples (drawn with ``seed``) or at ``z``.

    ``check`` also computes the flow's own log-det at ``G(z)`` in float64 (``logdet_flow``) for
    comparison with ``Σ log s_i``. ``svd``: see :func:`singular_values`. Times are in ``seconds``
    (jacobian, svd, check).
    """
    require(model, *(JACOBIAN_NEEDS if check else JACOBIAN_NEEDS[:2]), analysis="the Jacobian analysis")
    if z is None:
        if n < 1:
            raise ValueError("n must be >= 1")
        gen = torch.Generator().manual_seed(seed)
        z = model.prior.sample((int(n), *model.shape), generator=gen, dtype=torch.float32)
    z = z.detach().cpu()
    t0 = time.perf_counter()
    jac, used = generator_jacobians(model, z, dtype=dtype, method=method, progress=progress)
    t1 = time.perf_counter()
    s, n_gram = _singular_values(jac, threads, svd, GRAM_MAX_CONDITION)
    s = s.cpu()
    t2 = time.perf_counter()
    del jac
    logdet_flow = (
        flow_logdet_at(model, z.to(torch.float64)).cpu()
        if check
        else torch.full((len(z),), float("nan"), dtype=torch.float64)
    )
    t3 = time.perf_counter()
    return JacobianSpectra(
        s,
        logdet_flow.cpu(),
        used,
        str(dtype).replace("torch.", ""),
        {"jacobian": t1 - t0, "svd": t2 - t1, "check": t3 - t2, "total": t3 - t0},
        n_gram,
    )
