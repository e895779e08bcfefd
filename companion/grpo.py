"""Group relative policy optimisation (Chapter 7, ``book/07_grpo.md``; Shao et al. 2024).

GRPO drops PPO's critic: for each prompt it samples a *group* of ``G`` outputs, scores
them with a verifiable reward, and uses each output's reward normalised within its group
as the advantage of every one of its tokens. This module holds only the pure pieces:
group advantages, the k3 KL estimator (and what its gradient estimates), and the loss
with its aggregation variants. The chapter's experiment (a toy task, its policy and
trainers) is in :mod:`companion.digit_sum`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from companion._validate import check_distribution, check_positive_int

__all__ = [
    "group_advantages",
    "kl_k3",
    "k3_symbolic_bias",
    "k3_nonnegativity_argument",
    "kl_estimator_violations",
    "group_advantage_violations",
    "no_signal_gap",
    "KL_DIRECTIONS",
    "k3_gradient_expectation",
    "kl_gradient",
    "k3_gradient_matches",
    "LOSS_TYPES",
    "grpo_loss",
    "aggregation_weights",
    "aggregation_weights_match",
]

LOSS_TYPES = ("grpo", "bnpo", "dapo", "dr_grpo")
KL_DIRECTIONS = ("pi||ref", "ref||pi")


def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    return float(eps)


def group_advantages(rewards: Any, scale: bool = True, eps: float = 1e-4) -> Any:
    """Group-relative advantages for rewards of shape ``(n_prompts, G)`` (Chapter 7, eq. ``group-advantage``).

    :math:`\\hat A_i = (r_i - \\operatorname{mean}(r)) / (\\operatorname{std}(r) + \\text{eps})` within
    each row (group). The standard deviation is the *sample* one (``ddof=1``, as
    ``torch.std`` computes it and as TRL's GRPO uses), so a normalised group has sample
    standard deviation 1 (up to ``eps``). A group whose rewards are all equal gets zero
    advantages: it carries no learning signal. ``scale=False`` gives the Dr. GRPO form
    :math:`r_i - \\operatorname{mean}(r)`. numpy in, numpy out; torch in, torch out.
    ``eps`` must be positive (an all-equal group would otherwise give 0/0).
    """
    eps = _check_eps(eps)
    if not isinstance(scale, (bool, np.bool_)):
        raise ValueError(f"scale must be a bool, got {scale!r}")
    if type(rewards).__module__.startswith("torch"):
        import torch

        r = rewards if rewards.is_floating_point() else rewards.to(torch.float64)
        if r.ndim != 2 or r.shape[1] < 2:
            raise ValueError(f"rewards must have shape (n_prompts, G) with G >= 2, got {tuple(r.shape)}")
        if not torch.all(torch.isfinite(r)):
            raise ValueError("rewards contain NaN or inf")
        centred = r - r.mean(dim=1, keepdim=True)
        return centred / (r.std(dim=1, keepdim=True) + eps) if scale else centred
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"rewards must have shape (n_prompts, G) with G >= 2, got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("rewards contain NaN or inf")
    centred = r - r.mean(axis=1, keepdims=True)
    return centred / (r.std(axis=1, ddof=1, keepdims=True) + eps) if scale else centred


def kl_k3(logp: Any, logp_ref: Any) -> Any:
    """Per-token k3 estimator of :math:`D_{KL}(\\pi \\| \\pi_{ref})` from tokens sampled from :math:`\\pi`.

    :math:`x - \\log x - 1` with :math:`x = \\pi_{ref}/\\pi` at the sampled token
    (Schulman 2020, "Approximating KL divergence"): its *value* is unbiased, because
    :math:`\\mathbb E_\\pi[\\pi_{ref}/\\pi] = 1`, and non-negative, because
    :math:`x - 1 - \\log x \\ge 0` (Chapter 7, eq. ``k3``). Its *gradient* is another
    matter: see :func:`k3_gradient_expectation`. Works on numpy arrays and torch tensors
    of equal shape.
    """
    if getattr(logp, "shape", None) != getattr(logp_ref, "shape", None):
        raise ValueError(
            f"logp and logp_ref must have the same shape, got {getattr(logp, 'shape', None)} "
            f"and {getattr(logp_ref, 'shape', None)}"
        )
    d = logp_ref - logp
    exp = d.exp() if hasattr(d, "exp") and not isinstance(d, np.ndarray) else np.exp(d)
    return exp - d - 1


def _logits(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite 1-D array of at least 2 logits, got {arr!r}")
    return arr


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def k3_gradient_expectation(
    logits: Any, ref_logits: Any, sampling_probs: Any = None, importance_weighted: bool = False
) -> np.ndarray:
    """Expected gradient, w.r.t. ``logits``, of the k3 penalty differentiated at sampled tokens.

    For a categorical policy :math:`\\pi = \\operatorname{softmax}(z)` and reference
    :math:`\\pi_{ref}`, a loss that adds :math:`\\mathrm{k3}(o)` at tokens
    :math:`o \\sim \\mu` and back-propagates through it has expected gradient
    :math:`\\nabla_z \\sum_o \\mu(o)\\, \\mathrm{k3}_z(o)` with the sampling weights
    :math:`\\mu` *held fixed* (sampling is not differentiated). This computes that sum
    exactly with torch autograd, with :math:`\\mu = \\pi` detached (on-policy, the
    default) or :math:`\\mu` = ``sampling_probs`` (tokens from an older policy, as in the
    second and later inner steps of GRPO). ``importance_weighted=True`` multiplies each
    term by the (differentiated) ratio :math:`\\pi(o)/\\mu(o)`, as TRL's
    ``use_bias_correction_kl`` does; the sum is then :math:`\\mathbb E_\\pi[\\mathrm{k3}]`
    itself and its gradient that of :math:`D_{KL}(\\pi \\| \\pi_{ref})`. Compare with
    :func:`kl_gradient`.
    """
    import torch

    z0 = _logits(logits, "logits")
    zr = _logits(ref_logits, "ref_logits")
    if zr.shape != z0.shape:
        raise ValueError(f"ref_logits must have shape {z0.shape}, got {zr.shape}")
    z = torch.tensor(z0, requires_grad=True)
    logp = torch.log_softmax(z, 0)
    logp_ref = torch.log_softmax(torch.tensor(zr), 0)
    if sampling_probs is None:
        weights = logp.exp().detach()
    else:
        weights = torch.tensor(check_distribution(sampling_probs, "sampling_probs", shape=z0.shape))
    if not isinstance(importance_weighted, bool):
        raise ValueError(f"importance_weighted must be a bool, got {importance_weighted!r}")
    terms = weights * kl_k3(logp, logp_ref)
    if importance_weighted:
        terms = terms * torch.exp(logp - torch.log(weights))
    terms.sum().backward()
    return z.grad.numpy().copy()


def kl_gradient(logits: Any, ref_logits: Any, direction: str) -> np.ndarray:
    """Exact gradient w.r.t. ``logits`` of a KL between :math:`\\pi = \\operatorname{softmax}(z)` and :math:`\\pi_{ref}`.

    Closed forms (no autograd), with :math:`p = \\pi`, :math:`q = \\pi_{ref}`:

    * ``"pi||ref"``: :math:`\\partial_{z_j} D_{KL}(p \\| q) = p_j(\\log(p_j/q_j) - D_{KL}(p \\| q))`;
    * ``"ref||pi"``: :math:`\\partial_{z_j} D_{KL}(q \\| p) = p_j - q_j`.
    """
    if direction not in KL_DIRECTIONS:
        raise ValueError(f"direction must be one of {KL_DIRECTIONS}, got {direction!r}")
    z = _logits(logits, "logits")
    zr = _logits(ref_logits, "ref_logits")
    if zr.shape != z.shape:
        raise ValueError(f"ref_logits must have shape {z.shape}, got {zr.shape}")
    p, q = _softmax(z), _softmax(zr)
    if direction == "ref||pi":
        return p - q
    log_ratio = np.log(p) - np.log(q)
    return p * (log_ratio - p @ log_ratio)


def k3_gradient_matches(
    logits: Any,
    ref_logits: Any,
    direction: str,
    sampling_probs: Any = None,
    importance_weighted: bool = False,
    rtol: float = 1e-8,
) -> bool:
    """Whether the expected gradient of the sampled k3 penalty equals the exact gradient of a KL.

    ``direction`` is the claim: ``"pi||ref"`` (the KL whose value k3 estimates) or
    ``"ref||pi"``. True when :func:`k3_gradient_expectation` and :func:`kl_gradient` agree
    to ``rtol`` relative to the larger gradient's norm. The chapter calls it with both
    claims; a test feeds the wrong one.
    """
    g = k3_gradient_expectation(logits, ref_logits, sampling_probs, importance_weighted)
    exact = kl_gradient(logits, ref_logits, direction)
    scale = max(np.linalg.norm(g), np.linalg.norm(exact), 1e-12)
    return bool(np.linalg.norm(g - exact) <= rtol * scale)


def _check_clip_eps(clip_eps: Any) -> float | None:
    if clip_eps is None:
        return None
    if isinstance(clip_eps, bool) or not isinstance(clip_eps, (int, float)):
        raise ValueError(f"clip_eps must be a positive number or None, got {clip_eps!r}")
    if not math.isfinite(clip_eps) or clip_eps <= 0:
        raise ValueError(f"clip_eps must be positive and finite (or None: no clipping), got {clip_eps}")
    return float(clip_eps)


def _check_beta(beta: Any) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    return float(beta)


def grpo_loss(
    logp: Any,
    logp_old: Any,
    logp_ref: Any,
    advantages: Any,
    mask: Any,
    clip_eps: float | None = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    group_size: int | None = None,
) -> Any:
    """The GRPO loss to *minimise*, for a batch of ``B`` sampled outputs of up to ``T`` tokens (torch).

    Per token :math:`t` of output :math:`i`, with :math:`r_{i,t} = \\pi_\\theta / \\pi_{old}` of that token,

    .. math::

        \\ell_{i,t} = \\min(r_{i,t} \\hat A_i, \\operatorname{clip}(r_{i,t}, 1-\\epsilon, 1+\\epsilon)\\hat A_i)
                     - \\beta\\, \\mathrm{k3}_{i,t}

    (``clip_eps=None``: no clipping, :math:`\\ell = r \\hat A - \\beta\\,\\mathrm{k3}`), and the
    loss is minus an average of :math:`\\ell` over the valid tokens (``mask``, entries 0
    or 1), with :math:`|o_i|` the number of valid tokens of output :math:`i`:

    * ``"grpo"`` (DeepSeekMath, Chapter 7 eq. ``grpo-objective``): mean over each
      output's tokens, then over outputs, :math:`\\frac1B \\sum_i \\frac{1}{|o_i|} \\sum_t \\ell_{i,t}`;
    * ``"dapo"`` (Yu et al. 2025, the equation of :math:`\\mathcal J_{DAPO}`): a token
      mean *within each group* of ``group_size`` consecutive outputs,
      :math:`\\sum_{i \\in g,t} \\ell_{i,t} / \\sum_{i \\in g} |o_i|`, then a mean over the
      groups (the expectation over prompts);
    * ``"bnpo"``: one token mean over the whole batch, :math:`\\sum_{i,t} \\ell_{i,t} / \\sum_i |o_i|`
      (TRL's ``"bnpo"``; TRL's ``"dapo"`` is the same mean taken over the global,
      accumulated batch). With one group per batch it equals ``"dapo"``;
    * ``"dr_grpo"`` (Liu et al. 2025): a sum over tokens divided by a constant,
      :math:`\\frac{1}{B\\, L_{\\max}} \\sum_{i,t} \\ell_{i,t}`, with :math:`L_{\\max}` =
      ``max_completion_length``, the generation limit (as TRL uses), which is required:
      the padded width ``T`` of a batch changes from batch to batch. Use it with
      unscaled advantages (``group_advantages(..., scale=False)``).

    Shapes: ``logp``, ``logp_old``, ``logp_ref``, ``mask`` are ``(B, T)``; ``advantages`` is
    ``(B,)`` (one per output, broadcast to its tokens) or ``(B, T)``.
    """
    import torch

    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    clip_eps = _check_clip_eps(clip_eps)
    beta = _check_beta(beta)
    if logp.ndim != 2:
        raise ValueError(f"logp must have shape (B, T), got {tuple(logp.shape)}")
    for name, x in (("logp_old", logp_old), ("logp_ref", logp_ref), ("mask", mask)):
        if x.shape != logp.shape:
            raise ValueError(f"{name} must have the shape of logp {tuple(logp.shape)}, got {tuple(x.shape)}")
    B, T = logp.shape
    adv = advantages[:, None] if advantages.ndim == 1 else advantages
    if adv.ndim != 2 or adv.shape[0] != B or adv.shape[1] not in (1, T):
        raise ValueError(f"advantages must have shape (B,) or (B, T) with B={B}, got {tuple(advantages.shape)}")
    for name, x in (("logp", logp), ("logp_old", logp_old), ("logp_ref", logp_ref), ("advantages", adv)):
        if not torch.all(torch.isfinite(x)):
            raise ValueError(f"{name} contains NaN or inf")
    if not torch.all((mask == 0) | (mask == 1)):
        raise ValueError("mask must contain only 0 and 1 (valid token or padding)")
    m = mask.to(logp.dtype)
    lengths = m.sum(1)
    if torch.any(lengths == 0):
        raise ValueError("mask must give every output at least one valid token")
    if loss_type == "dr_grpo":
        if max_completion_length is None:
            raise ValueError("loss_type 'dr_grpo' needs max_completion_length (the generation limit)")
        L = check_positive_int(max_completion_length, "max_completion_length")
        if L < T:
            raise ValueError(f"max_completion_length ({L}) is below the padded width of the batch ({T})")
    if loss_type == "dapo":
        if group_size is None:
            raise ValueError("loss_type 'dapo' needs group_size (outputs per prompt)")
        G = check_positive_int(group_size, "group_size")
        if B % G:
            raise ValueError(f"group_size ({G}) must divide the number of outputs ({B})")
    ratio = torch.exp(logp - logp_old)
    if clip_eps is None:
        per_token = ratio * adv
    else:
        per_token = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    if beta:
        per_token = per_token - beta * kl_k3(logp, logp_ref)
    per_token = per_token * m
    if loss_type == "grpo":
        objective = (per_token.sum(1) / lengths).mean()
    elif loss_type == "bnpo":
        objective = per_token.sum() / lengths.sum()
    elif loss_type == "dapo":
        per_group = per_token.sum(1).reshape(-1, G).sum(1) / lengths.reshape(-1, G).sum(1)
        objective = per_group.mean()
    else:
        objective = per_token.sum() / (B * L)
    return -objective


def aggregation_weights(
    loss_type: str, mask: Any, group_size: int | None = None, max_completion_length: int | None = None
) -> np.ndarray:
    """Weight of each token's term in :func:`grpo_loss`, read off by automatic differentiation.

    With all ratios at 1 (nothing clipped), no KL penalty and unit advantages, the
    derivative of minus the loss with respect to each token's log-probability is the
    weight with which that token enters the average. Returns a ``(B, T)`` array.
    """
    import torch

    m = torch.as_tensor(np.asarray(mask, dtype=np.float64))
    logp = torch.zeros(m.shape, dtype=torch.float64, requires_grad=True)
    loss = grpo_loss(
        logp, logp.detach(), logp.detach(), torch.ones(m.shape[0], dtype=torch.float64), m,
        beta=0.0, loss_type=loss_type, max_completion_length=max_completion_length, group_size=group_size,
    )
    loss.backward()
    return -logp.grad.numpy()


def aggregation_weights_match(
    loss_type: str,
    mask: Any,
    claimed: Any,
    group_size: int | None = None,
    max_completion_length: int | None = None,
    rtol: float = 1e-12,
) -> bool:
    """Whether ``claimed`` (a ``(B, T)`` array of per-token weights, e.g. from a formula) is the
    weighting :func:`grpo_loss` applies for ``loss_type`` (see :func:`aggregation_weights`)."""
    w = aggregation_weights(loss_type, mask, group_size, max_completion_length)
    c = np.asarray(claimed, dtype=np.float64)
    return c.shape == w.shape and bool(np.allclose(c, w, rtol=rtol, atol=rtol * np.abs(w).max()))


def k3_symbolic_bias(estimator: Any) -> Any:
    """:math:`\\mathbb E_{o \\sim p}[f(x_o)] - D_{KL}(p \\| q)` in SymPy, with :math:`x_o = q(o)/p(o)`, for
    every pair of distributions on three outcomes (symbolic probabilities).

    ``estimator`` maps the SymPy ratio ``x`` to the per-sample value, e.g.
    ``lambda x: x - sympy.log(x) - 1`` (k3, Chapter 7 eq. ``k3``); the result simplifies to 0
    exactly when the estimator is unbiased for :math:`D_{KL}(p \\| q)` on three outcomes.
    """
    import sympy as sp

    p1, p2, q1, q2 = sp.symbols("p_1 p_2 q_1 q_2", positive=True)
    p = [p1, p2, 1 - p1 - p2]
    q = [q1, q2, 1 - q1 - q2]
    mean = sum(pi * estimator(qi / pi) for pi, qi in zip(p, q))
    kl = sum(pi * sp.log(pi / qi) for pi, qi in zip(p, q))
    return sp.simplify(sp.expand_log(mean - kl, force=True))


def k3_nonnegativity_argument(estimator: Any) -> bool:
    """Whether the argument of part (ii) of the chapter's lemma holds for ``estimator`` (SymPy).

    ``estimator`` maps a positive SymPy symbol ``x`` to the per-sample value (k3:
    ``lambda x: x - sympy.log(x) - 1``). True when, for every :math:`x > 0`, the
    derivative vanishes only at :math:`x = 1`, the value there is 0 and the second
    derivative is positive (so :math:`f \\ge 0` with equality only at 1). A flipped sign
    (no critical point), a dropped :math:`-1` (minimum 1) and k1 (no critical point) fail.
    """
    import sympy as sp

    x = sp.Symbol("x", positive=True)
    f = estimator(x)
    critical = sp.solve(sp.diff(f, x), x)
    if critical != [1] or sp.simplify(f.subs(x, 1)) != 0:
        return False
    return bool(sp.simplify(sp.diff(f, x, 2)).is_positive)


def kl_estimator_violations(estimator: Any, p: Any, q: Any, atol: float = 1e-10) -> list[str]:
    """What is wrong, on one pair of distributions, with a per-sample estimator of :math:`D_{KL}(p \\| q)`.

    ``estimator(logp, logp_ref)`` returns the value at every outcome (e.g. :func:`kl_k3`),
    for outcomes sampled from ``p``. Its exact mean :math:`\\sum_o p(o) f(o)` is compared
    with :math:`D_{KL}(p \\| q) = \\sum_o p(o) \\log(p(o)/q(o))`, computed directly, and
    its values must be non-negative (as a divergence is). Returns a list naming each
    violation (``"biased"``, ``"negative"``); empty for k3 (Chapter 7, lemma ``lem-k3``).
    A dropped :math:`-1`, the ratio upside down and a flipped sign are biased; k1
    (:math:`-\\log x`) is unbiased but negative somewhere.
    """
    p = check_distribution(p, "p")
    q = check_distribution(q, "q", shape=p.shape)
    if np.any(p <= 0) or np.any(q <= 0):
        raise ValueError("p and q must be strictly positive")
    values = np.asarray(estimator(np.log(p), np.log(q)), dtype=np.float64)
    if values.shape != p.shape:
        raise ValueError(f"estimator must return one value per outcome {p.shape}, got {values.shape}")
    kl = float(np.sum(p * np.log(p / q)))
    found = []
    if abs(float(p @ values) - kl) > atol * max(1.0, kl):
        found.append("biased")
    if np.any(values < -atol):
        found.append("negative")
    return found


def group_advantage_violations(rewards: Any, advantages: Any, atol: float = 1e-3) -> list[str]:
    """Which properties of eq. ``group-advantage`` the ``advantages`` of ``rewards`` (both ``(n, G)``) break.

    Computed with NumPy, independently of :func:`group_advantages`: every row has mean 0
    (``"not centred"``); a row whose rewards vary has sample standard deviation
    (``ddof=1``) 1 within ``atol`` (``"wrong spread"``: the population one, ``ddof=0``,
    gives :math:`\\sqrt{G/(G-1)}`); an all-equal row is all zeros (``"equal group not
    zero"``). Returns the list of broken properties, empty when all hold.
    """
    r = np.asarray(rewards, dtype=np.float64)
    a = np.asarray(advantages, dtype=np.float64)
    if r.ndim != 2 or a.shape != r.shape:
        raise ValueError(f"rewards and advantages must have the same shape (n, G), got {r.shape} and {a.shape}")
    found = []
    if not np.all(np.isfinite(a)):
        return ["not finite"]
    if not np.allclose(a.mean(axis=1), 0.0, atol=atol):
        found.append("not centred")
    varies = r.std(axis=1) > 0
    if np.any(varies) and not np.allclose(a[varies].std(axis=1, ddof=1), 1.0, atol=atol):
        found.append("wrong spread")
    if np.any(a[~varies] != 0):
        found.append("equal group not zero")
    return found


def no_signal_gap(
    claimed: Any, p: float, group_sizes: Any, check_at: Any = (2, 4, 8, 16),
    n_groups: int = 40_000, seed: int = 0,
) -> float:
    """Largest gap between a claimed P(group has no signal) and simulation, over ``check_at``.

    ``claimed[k]`` is the claimed probability that a group of ``group_sizes[k]`` binary
    rewards, each 1 with probability ``p``, is all 1 or all 0 (the chapter plots
    :math:`p^G + (1-p)^G`). For each ``G`` in ``check_at`` (which must be among
    ``group_sizes``) the fraction of ``n_groups`` simulated groups with no spread is
    compared with the claimed value; the largest absolute gap is returned. Its standard
    error is at most :math:`\\sqrt{0.25/n}` per ``G`` (0.0025 for the default ``n``).
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"p must be a probability, got {p!r}")
    sizes = np.asarray(group_sizes)
    claimed = np.asarray(claimed, dtype=np.float64)
    if claimed.shape != sizes.shape:
        raise ValueError(f"claimed must have the shape of group_sizes {sizes.shape}, got {claimed.shape}")
    n_groups = check_positive_int(n_groups, "n_groups")
    rng = np.random.default_rng(seed)
    gap = 0.0
    for G in check_at:
        where = np.flatnonzero(sizes == G)
        if where.size != 1:
            raise ValueError(f"check_at value {G} must appear once in group_sizes")
        wins = rng.random((n_groups, int(G))) < p
        frac = float(np.mean(wins.all(1) | (~wins).all(1)))
        gap = max(gap, abs(frac - float(claimed[where[0]])))
    return gap
