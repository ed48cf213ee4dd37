"""Shared test utilities: brute-force Jacobians and randomised flows."""

import torch


def perturb(module: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """Add noise to every parameter (so zero-initialised couplings are not the identity) and give
    batch-norm layers non-trivial running statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.3 * torch.randn(b.shape, generator=gen, dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen, dtype=b.dtype))
    return module


def brute_force_logdet(fn, x: torch.Tensor) -> torch.Tensor:
    """``log|det J|`` of ``fn`` at each sample of ``x`` from the full Jacobian (float64)."""
    out = []
    for xi in x:

        def flat(v):
            y = fn(v.reshape(1, *xi.shape))
            y = y[0] if isinstance(y, tuple) else y
            return y.reshape(-1)

        jac = torch.autograd.functional.jacobian(flat, xi.reshape(-1), vectorize=True)
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign != 0, "singular Jacobian"
        out.append(logabs)
    return torch.stack(out)
