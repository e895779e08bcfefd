"""Checkers for Chapter 5 (PPO).

Tolerances are relative to the answer's scale (:data:`companion.exercises._common.RTOL`,
1e-5); messages say which case is off, never the expected value.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from companion.exercises._common import RTOL, _call, _fail, _passed, _scalar, tolerance


def check_clipped_surrogate(fn: Callable[..., Any]) -> bool:
    """Check ``fn(ratio, adv, eps)``: values and autograd gradients in all six cases of the clipped objective.

    Values and gradients must match to 1e-5 relative to their scale, at eps = 0.2 and at
    eps = 0.1 (ratios 0.85 and 1.15 lie inside the first interval and outside the second,
    so an answer with eps written in as a constant fails).
    """
    import torch

    from companion.ppo import clipped_surrogate

    r_values = [0.5, 0.85, 1.0, 1.15, 1.6]
    for eps in (0.2, 0.1):  # 0.85 and 1.15 are clipped at eps = 0.1, not at 0.2
        ratio = torch.tensor(r_values * 2, dtype=torch.float64, requires_grad=True)
        adv = torch.tensor([2.0] * 5 + [-2.0] * 5, dtype=torch.float64)
        labels = [f"eps={eps}, A={a:+.0f}, r={r:.2f}" for a, r in zip(adv.tolist(), ratio.tolist())]
        got = _call(fn, "my_clipped_surrogate", ratio, adv, eps)
        if not isinstance(got, torch.Tensor) or got.shape != ratio.shape:
            _fail("my_clipped_surrogate must return a torch tensor with one value per sample.")
        want = clipped_surrogate(ratio.detach(), adv, eps).numpy()
        got_v = got.detach().to(torch.float64).numpy()
        if not np.all(np.isfinite(got_v)):
            _fail("my_clipped_surrogate returned NaN or inf.")
        err = np.abs(got_v - want)
        if err.max() > tolerance(want, RTOL):
            i = int(err.argmax())
            _fail(f"the value is off by {got_v[i] - want[i]:+.4g} in the case {labels[i]}.")
        if not got.requires_grad:
            _fail("the result does not depend on ratio through autograd; "
                  "build it from torch operations on ratio.")
        (grad,) = torch.autograd.grad(got.sum(), ratio)
        r, A = np.array(r_values * 2), adv.numpy()
        # the gradient flows through r * A exactly where the unclipped term is the minimum
        unclipped = ((A > 0) & (r < 1 + eps)) | ((A < 0) & (r > 1 - eps))
        want_grad = np.where(unclipped, A, 0.0)
        bad = np.abs(grad.numpy() - want_grad) > tolerance(want_grad, RTOL)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            _fail(f"the gradient with respect to the ratio is wrong in the case {labels[i]} "
                  "(the value there is right, so check which branch carries the gradient).")
    return _passed("values and gradients match all six cases of the clipped objective.")


def check_approx_kl(fn: Callable[..., Any]) -> bool:
    """Check ``fn(logp_new, logp_old)`` against the ``(r - 1) - log r`` estimator, and that it is unbiased.

    On a batch the value must match to 1e-5 relative; on 200,000 samples of two
    categorical distributions the estimate must lie within 5 standard errors of the
    exact KL(old || new).
    """
    import torch

    gen = torch.Generator().manual_seed(51)
    logp_old = torch.log(torch.rand(64, generator=gen, dtype=torch.float64))
    logp_new = logp_old + 0.3 * torch.randn(64, generator=gen, dtype=torch.float64)
    got = _scalar(_call(fn, "approx_kl", logp_new.clone(), logp_old.clone()), "approx_kl")
    log_r = logp_new - logp_old
    want = float(((log_r.exp() - 1) - log_r).mean())
    if abs(got - want) > tolerance(want, RTOL):
        naive = float((-log_r).mean())
        if abs(got - naive) <= tolerance(naive, RTOL):
            _fail("that is the naive estimate mean(-log r), whose terms can be negative; "
                  "the exercise asks for a different per-sample term with the same mean.")
        if abs(got - want * 64) <= tolerance(want * 64, RTOL):
            _fail("approx_kl returns a sum over the batch; it must be a mean.")
        _fail(f"approx_kl is off by {(got - want) / max(abs(want), 1e-12):+.2%} (relative) "
              "on a batch of 64 samples.")
    # unbiased: exact KL between two categorical distributions, estimated from many samples of the old one
    p_old = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    p_new = torch.tensor([0.3, 0.3, 0.4], dtype=torch.float64)
    n = 200_000
    a = torch.multinomial(p_old, n, replacement=True, generator=gen)
    est = _scalar(_call(fn, "approx_kl", p_new.log()[a], p_old.log()[a]), "approx_kl")
    exact = float((p_old * (p_old.log() - p_new.log())).sum())
    log_r = p_new.log()[a] - p_old.log()[a]
    se = float(((log_r.exp() - 1) - log_r).std()) / np.sqrt(n)
    if abs(est - exact) > 5 * se:
        _fail(f"on {n:,} samples of the old policy the estimate is {abs(est - exact) / se:.0f} "
              "standard errors away from the exact KL(old || new): it is biased.")
    return _passed("approx_kl is the (r - 1) - log r estimator, and it is unbiased for KL(old || new).")
