"""Checkers for Chapter 5 (PPO)."""

from __future__ import annotations

from typing import Any, Callable

from companion.exercises._common import (
    _call,
    _fail,
    _passed,
)


def check_clipped_surrogate(fn: Callable[..., Any]) -> bool:
    """Check ``fn(ratio, adv, eps)``: values and autograd gradients in all six cases of the clipped objective."""
    import torch

    from companion.ppo import clipped_surrogate

    ratio = torch.tensor([0.5, 0.85, 1.0, 1.15, 1.6, 0.5, 0.85, 1.0, 1.15, 1.6], dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([2.0] * 5 + [-2.0] * 5, dtype=torch.float64)
    labels = [f"A={a:+.0f}, r={r:.2f}" for a, r in zip(adv.tolist(), ratio.tolist())]
    got = _call(fn, "my_clipped_surrogate", ratio, adv, 0.2)
    if not isinstance(got, torch.Tensor) or got.shape != ratio.shape:
        _fail("my_clipped_surrogate must return a torch tensor with one value per sample.")
    want = clipped_surrogate(ratio.detach(), adv, 0.2)
    err = (got.detach() - want).abs()
    if err.max() > 1e-9:
        i = int(err.argmax())
        _fail(f"the value is off by {float(got.detach()[i] - want[i]):+.4g} at {labels[i]}.")
    if not got.requires_grad:
        _fail("the result does not depend on ratio through autograd; build it from torch operations on ratio.")
    (grad,) = torch.autograd.grad(got.sum(), ratio)
    want_grad = torch.tensor([2, 2, 2, 2, 0, 0, -2, -2, -2, -2], dtype=torch.float64)
    bad = (grad - want_grad).abs() > 1e-9
    if bad.any():
        i = int(bad.nonzero()[0])
        _fail(f"the gradient with respect to the ratio is {float(grad[i]):g} at {labels[i]}, which is the wrong case.")
    return _passed("values and gradients match all six cases of the clipped objective.")


def check_approx_kl(fn: Callable[..., Any]) -> bool:
    """Check ``fn(logp_new, logp_old)`` against the ``(r - 1) - log r`` estimator, and that it is unbiased."""
    import torch

    gen = torch.Generator().manual_seed(51)
    logp_old = torch.log(torch.rand(64, generator=gen, dtype=torch.float64))
    logp_new = logp_old + 0.3 * torch.randn(64, generator=gen, dtype=torch.float64)
    got = _call(fn, "approx_kl", logp_new.clone(), logp_old.clone())
    log_r = logp_new - logp_old
    want = float(((log_r.exp() - 1) - log_r).mean())
    try:
        got_f = float(got)
    except (TypeError, ValueError):
        _fail("approx_kl must return a single number (a 0-d tensor or a float).")
    if abs(got_f - want) > 1e-9:
        if abs(got_f - float((-log_r).mean())) < 1e-9:
            _fail("that is the naive estimate mean(-log r); add the (r - 1) term, which has zero mean but cancels noise.")
        _fail(f"approx_kl is off by {got_f - want:+.4g} on a batch of 64 samples.")
    # unbiased: exact KL between two categorical distributions, estimated from many samples of the old one
    p_old = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    p_new = torch.tensor([0.3, 0.3, 0.4], dtype=torch.float64)
    a = torch.multinomial(p_old, 200_000, replacement=True, generator=gen)
    est = float(_call(fn, "approx_kl", p_new.log()[a], p_old.log()[a]))
    exact = float((p_old * (p_old.log() - p_new.log())).sum())
    if abs(est - exact) > 5e-3:
        _fail(f"on 200,000 samples the estimate is {est:.4f} but KL(old || new) = {exact:.4f}.")
    return _passed("approx_kl is the (r - 1) - log r estimator, and it is unbiased for KL(old || new).")
