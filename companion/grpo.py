"""Group relative policy optimisation (Chapter 7, ``book/07_grpo.md``; Shao et al. 2024).

GRPO drops PPO's critic: for each prompt it samples a *group* of ``G`` outputs, scores
them with a verifiable reward, and uses each output's reward normalised within its group
as the advantage of every one of its tokens. This module holds only the pure pieces:
group advantages, the k3 KL estimator and the loss with its aggregation variants. The
chapter's experiment (a toy task, its policy and trainers) is in
:mod:`companion.digit_sum`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from companion._validate import check_positive_int

__all__ = [
    "group_advantages",
    "kl_k3",
    "LOSS_TYPES",
    "grpo_loss",
]

LOSS_TYPES = ("grpo", "dr_grpo", "dapo")


def group_advantages(rewards: Any, scale: bool = True, eps: float = 1e-4) -> Any:
    """Group-relative advantages for rewards of shape ``(n_prompts, G)`` (Chapter 7, eq. ``group-advantage``).

    :math:`\\hat A_i = (r_i - \\operatorname{mean}(r)) / (\\operatorname{std}(r) + \\text{eps})` within
    each row (group). The standard deviation is the *sample* one (``ddof=1``, as
    ``torch.std`` computes it and as TRL's GRPO uses), so a normalised group has sample
    standard deviation 1 (up to ``eps``). A group whose rewards are all equal gets zero
    advantages: it carries no learning signal. ``scale=False`` gives the Dr. GRPO form
    :math:`r_i - \\operatorname{mean}(r)`. numpy in, numpy out; torch in, torch out.
    """
    is_torch = type(rewards).__module__.startswith("torch")
    if is_torch:
        import torch

        r = rewards.to(torch.float64) if not rewards.is_floating_point() else rewards
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
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    centred = r - r.mean(axis=1, keepdims=True)
    return centred / (r.std(axis=1, ddof=1, keepdims=True) + eps) if scale else centred


def kl_k3(logp: Any, logp_ref: Any) -> Any:
    """Per-token k3 estimator of :math:`D_{KL}(\\pi \\| \\pi_{ref})` from tokens sampled from :math:`\\pi`.

    :math:`\\exp(\\log\\pi_{ref} - \\log\\pi) - (\\log\\pi_{ref} - \\log\\pi) - 1`: unbiased, because
    :math:`\\mathbb E_\\pi[\\pi_{ref}/\\pi] = 1`, and non-negative, because :math:`x - 1 - \\log x \\ge 0`
    (Chapter 7, eq. ``k3``). Works on numpy arrays and torch tensors of equal shape.
    """
    if getattr(logp, "shape", None) != getattr(logp_ref, "shape", None):
        raise ValueError(f"logp and logp_ref must have the same shape, got {getattr(logp, 'shape', None)} "
                         f"and {getattr(logp_ref, 'shape', None)}")
    d = logp_ref - logp
    exp = d.exp() if hasattr(d, "exp") and not isinstance(d, np.ndarray) else np.exp(d)
    return exp - d - 1


def grpo_loss(
    logp: Any,
    logp_old: Any,
    logp_ref: Any,
    advantages: Any,
    mask: Any,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    max_len: int | None = None,
) -> Any:
    """The GRPO loss to *minimise*, for a batch of ``B`` sampled outputs of up to ``T`` tokens (torch).

    Per token :math:`t` of output :math:`i`, with :math:`r_{i,t} = \\pi_\\theta / \\pi_{old}` of that token,

    .. math::

        \\ell_{i,t} = \\min(r_{i,t} \\hat A_i, \\operatorname{clip}(r_{i,t}, 1-\\epsilon, 1+\\epsilon)\\hat A_i)
                     - \\beta\\, \\mathrm{k3}_{i,t},

    and the loss is minus an average of :math:`\\ell` over the valid tokens (``mask``):

    * ``"grpo"`` (DeepSeekMath): mean over each output's tokens, then over outputs,
      :math:`\\frac1B \\sum_i \\frac{1}{|o_i|} \\sum_t \\ell_{i,t}`;
    * ``"dapo"``: one mean over all tokens of the batch, :math:`\\sum_{i,t} \\ell_{i,t} / \\sum_i |o_i|`;
    * ``"dr_grpo"``: a sum over tokens divided by a constant, :math:`\\frac{1}{B\\, L_{\\max}} \\sum_{i,t} \\ell_{i,t}`
      with :math:`L_{\\max}` = ``max_len`` (default ``T``); use it with unscaled advantages
      (``group_advantages(..., scale=False)``).

    Shapes: ``logp``, ``logp_old``, ``logp_ref``, ``mask`` are ``(B, T)``; ``advantages`` is
    ``(B,)`` (one per output, broadcast to its tokens) or ``(B, T)``.
    """
    import torch

    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    for name, x in (("logp_old", logp_old), ("logp_ref", logp_ref), ("mask", mask)):
        if x.shape != logp.shape:
            raise ValueError(f"{name} must have the shape of logp {tuple(logp.shape)}, got {tuple(x.shape)}")
    if logp.ndim != 2:
        raise ValueError(f"logp must have shape (B, T), got {tuple(logp.shape)}")
    adv = advantages[:, None] if advantages.ndim == 1 else advantages
    if adv.shape[0] != logp.shape[0] or adv.shape[1] not in (1, logp.shape[1]):
        raise ValueError(f"advantages must have shape (B,) or (B, T) with B={logp.shape[0]}, got {tuple(advantages.shape)}")
    if not clip_eps > 0 or beta < 0:
        raise ValueError(f"need clip_eps > 0 and beta >= 0, got {clip_eps} and {beta}")
    m = mask.to(logp.dtype)
    lengths = m.sum(1)
    if torch.any(lengths == 0):
        raise ValueError("every output must have at least one valid token in mask")
    ratio = torch.exp(logp - logp_old)
    per_token = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    if beta:
        per_token = per_token - beta * kl_k3(logp, logp_ref)
    per_token = per_token * m
    if loss_type == "grpo":
        objective = (per_token.sum(1) / lengths).mean()
    elif loss_type == "dapo":
        objective = per_token.sum() / lengths.sum()
    else:
        L = logp.shape[1] if max_len is None else check_positive_int(max_len, "max_len")
        objective = per_token.sum() / (logp.shape[0] * L)
    return -objective
