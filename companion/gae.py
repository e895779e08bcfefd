"""Generalized advantage estimation (Chapter 6, ``book/06_gae.md``; Schulman et al. 2015).

With TD residuals :math:`\\delta_t = r_t + \\gamma V(s_{t+1}) - V(s_t)`, the GAE(:math:`\\gamma, \\lambda`)
advantage estimate is the exponentially weighted sum

.. math::

    \\hat A_t = \\sum_{l \\ge 0} (\\gamma \\lambda)^l \\delta_{t+l}
             = \\delta_t + \\gamma \\lambda \\hat A_{t+1},

cut at the end of each episode. Special cases: :math:`\\lambda = 0` gives the TD residual
:math:`\\delta_t`; :math:`\\lambda = 1` gives the discounted Monte Carlo return minus
:math:`V(s_t)`.

Episode ends come in two kinds, as gymnasium reports them:

* **terminated** (the MDP reached a terminal state): the value after it is 0, so
  :math:`\\delta_t = r_t - V(s_t)`;
* **truncated** (a time limit or the end of the rollout cut the episode short): the
  episode *would* have continued, so the value of the final observation is
  bootstrapped, :math:`\\delta_t = r_t + \\gamma V(s_{t+1}) - V(s_t)`.

In both cases the recursion does not look past the end: :math:`\\hat A_t = \\delta_t`.
On the reset steps of a vector environment's next-step autoreset, ``gae`` returns
meaningless values, which the learners mask (see :func:`gae`).

For the bias/variance analysis of the chapter, the module also computes exact
quantities on a tabular MDP: the :math:`k`-step bias (:func:`k_step_bias`, checked
against :func:`k_step_mean` by :func:`k_step_bias_gap`) and the exact moments of the
GAE estimate (:func:`gae_moments`, :func:`softmax_gradient_error`), with
:func:`moment_z_scores` to compare them with samples.

The chapter's checks are functions here, so that ``tests/test_falsifiable_ch6.py`` can
feed them the wrong versions they claim to reject: :func:`episode_boundary_gap` (the
worked example), :func:`gae_loops_gap` (plain loops, :func:`gae_loops`, against
:func:`gae`), :func:`k_step_mean_z` and :func:`gae_moment_z` (exact moments against
sampling), :func:`gae_bias_mixture_gap` (GAE bias as a mixture of :math:`k`-step
biases) and :func:`terminated_identity_failures` (SymPy, a terminated episode).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from companion._validate import (
    as_array,
    check_gamma,
    check_positive_int,
    check_unit_interval,
)

__all__ = [
    "gae",
    "lambda_returns",
    "k_step_advantage",
    "state_law",
    "k_step_mean",
    "k_step_bias",
    "k_step_bias_gap",
    "gae_moments",
    "softmax_gradient_error",
    "moment_z_scores",
    "episode_boundary_gap",
    "gae_loops",
    "gae_loops_gap",
    "k_step_mean_z",
    "gae_moment_z",
    "gae_mixture_weights",
    "gae_bias_mixture_gap",
    "terminated_identity_failures",
]


_NAMES = ("rewards", "values", "next_values", "terminated", "truncated")


def _is_torch(x: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, torch.Tensor)


def _prepare(rewards: Any, values: Any, next_values: Any, terminated: Any, truncated: Any) -> tuple:
    """Validate shapes and values; return float arrays (all numpy or all torch).

    If any argument is a torch tensor, all five must be (so the result can stay on the
    caller's device); otherwise anything :func:`numpy.asarray` accepts (lists included)
    is converted to float64. Raises ``ValueError`` naming the offending argument.
    """
    arrays = (rewards, values, next_values, terminated, truncated)
    tensors = [_is_torch(a) for a in arrays]
    if any(tensors):
        import torch

        for name, is_t in zip(_NAMES, tensors):
            if not is_t:
                raise ValueError(
                    f"{name} must be a torch tensor like the other arguments "
                    f"(pass all five as tensors or none), got {type(arrays[_NAMES.index(name)]).__name__}"
                )
        dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
        out = []
        for name, a in zip(_NAMES, arrays):
            if a.shape != rewards.shape:
                raise ValueError(f"{name} must have the shape of rewards {tuple(rewards.shape)}, got {tuple(a.shape)}")
            a = a.to(dtype)
            if not bool(torch.all(torch.isfinite(a))):
                raise ValueError(f"{name} contains NaN or inf")
            out.append(a)
    else:
        r = as_array(rewards, "rewards")
        out = [r] + [as_array(a, n, shape=r.shape) for n, a in zip(_NAMES[1:], arrays[1:])]
    for name, f in zip(_NAMES[3:], out[3:]):
        if bool(((f != 0) & (f != 1)).any()):
            raise ValueError(f"{name} must hold 0/1 or bool flags")
    if out[0].ndim not in (1, 2):
        raise ValueError(f"rewards must have shape (T,) or (T, N), got {tuple(out[0].shape)}")
    return tuple(out)


def gae(
    rewards: Any,
    values: Any,
    next_values: Any,
    terminated: Any,
    truncated: Any,
    gamma: float,
    lam: float,
) -> Any:
    """GAE(:math:`\\gamma, \\lambda`) advantages, same shape and type as ``rewards``.

    Parameters
    ----------
    rewards : (T,) or (T, N)
        :math:`r_t`; ``N`` environments side by side (time on axis 0).
    values : same shape
        :math:`V(s_t)`, the critic's value of the state in which the action was taken.
    next_values : same shape
        :math:`V(s_{t+1})`. For a truncated step, the value of the *final observation*
        of the episode (not of the reset observation a vector env returns); for a
        terminated step it is ignored.
    terminated, truncated : same shape, 0/1 or bool
        As gymnasium reports them for step ``t``.
    gamma, lam : floats in [0, 1]
        Discount :math:`\\gamma` and GAE parameter :math:`\\lambda`.

    Returns
    -------
    advantages
        :math:`\\hat A_t`, computed by the backward recursion
        :math:`\\delta_t = r_t + \\gamma (1 - \\text{terminated}_t) V(s_{t+1}) - V(s_t)`,
        :math:`\\hat A_t = \\delta_t + \\gamma\\lambda(1 - \\text{done}_t) \\hat A_{t+1}` with
        ``done = terminated or truncated`` and :math:`\\hat A_T = 0` (Chapter 6, eq.
        ``gae-recursion``). Vectorised over ``N``; numpy (or lists) in, float64 numpy
        out; torch in, torch out (same device; integer rewards give float32). ``T = 0``
        gives an empty result.

    Notes
    -----
    On a rollout of a vector environment with gymnasium's next-step autoreset
    (:class:`companion.rollout.Rollout`), the step after an episode end only resets the
    environment: its ``values`` is the value of the previous episode's final observation
    and its ``next_values`` that of the new first observation. ``gae`` returns a
    meaningless number there (it does not know about such steps); the learners leave
    those steps out of every loss through ``Rollout.valid``. The meaningless value does
    not leak into the steps before it, because the recursion stops at the episode end
    that precedes it.

    Raises
    ------
    ValueError
        If ``gamma`` or ``lam`` lies outside ``[0, 1]``, the arrays do not all have the
        shape of ``rewards`` (``(T,)`` or ``(T, N)``), an entry is NaN or inf, a flag is
        not 0/1, or torch tensors are mixed with other types; the message names the
        argument.
    """
    gamma = check_gamma(gamma, allow_one=True)
    lam = check_unit_interval(lam, "lam")
    r, v, v_next, term, trunc = _prepare(rewards, values, next_values, terminated, truncated)
    not_terminal = 1 - term
    not_done = (1 - term) * (1 - trunc)
    delta = r + gamma * not_terminal * v_next - v
    decay = gamma * lam * not_done
    adv = delta * 0  # zeros of the right type, shape and device
    if r.shape[0] == 0:
        return adv
    running = adv[0] * 0
    for t in range(r.shape[0] - 1, -1, -1):
        running = delta[t] + decay[t] * running
        adv[t] = running
    return adv


def lambda_returns(
    rewards: Any,
    values: Any,
    next_values: Any,
    terminated: Any,
    truncated: Any,
    gamma: float,
    lam: float,
) -> Any:
    """TD(:math:`\\lambda`) returns :math:`\\hat A_t + V(s_t)`: the regression targets of a critic trained with GAE."""
    return gae(rewards, values, next_values, terminated, truncated, gamma, lam) + values


def k_step_advantage(rewards: Any, values: Any, gamma: float, k: int) -> np.ndarray:
    """The :math:`k`-step advantage estimates :math:`\\hat A^{(k)}_t` along one trajectory segment.

    :math:`\\hat A^{(k)}_t = \\sum_{l=0}^{k-1} \\gamma^l r_{t+l} + \\gamma^k V(s_{t+k}) - V(s_t)
    = \\sum_{l=0}^{k-1} \\gamma^l \\delta_{t+l}` (Chapter 6, eq. ``k-step``). ``rewards`` has
    shape ``(T,)`` and ``values`` shape ``(T + 1,)`` (the last entry is the value of the
    state after the segment; 0 if it is terminal). Near the end of the segment, where
    :math:`t + k > T`, the sum stops at :math:`T` and bootstraps from ``values[T]``.
    """
    r = as_array(rewards, "rewards", ndim=1)
    T = r.shape[0]
    v = as_array(values, "values", shape=(T + 1,))
    k = check_positive_int(k, "k")
    g = check_gamma(gamma, allow_one=True)
    delta = r + g * v[1:] - v[:-1]
    # A^(k)_t = sum_{l<k} gamma^l delta_{t+l}, with delta = 0 past the end of the segment
    padded = np.concatenate([delta, np.zeros(min(k, T))])
    out = np.zeros(T)
    for l in range(min(k, T)):
        out += g**l * padded[l : l + T]
    return out


# --- exact moments on a tabular MDP (the bias/variance experiment of Chapter 6) ---------


def _tabular(mdp: Any, pi: Any, V: Any) -> tuple[np.ndarray, np.ndarray]:
    from companion import mdp as _mdp

    if not isinstance(mdp, _mdp.TabularMDP):
        raise ValueError(f"mdp must be a companion.mdp.TabularMDP, got {type(mdp).__name__}")
    pi = _mdp.check_policy(mdp, pi)
    V = as_array(V, "V", shape=(mdp.n_states,))
    return pi, V


def state_law(mdp: Any, pi: Any, k: int) -> np.ndarray:
    """:math:`P(s_{t+k} = s' \\mid s_t = s, a_t = a)`, shape ``(S, A, S)``, for ``k >= 0``.

    ``k = 0`` is the indicator of :math:`s' = s`; for ``k >= 1`` it is
    :math:`P(\\cdot \\mid s, a)\\, P_\\pi^{k-1}`, with later actions drawn from ``pi``.
    """
    from companion import mdp as _mdp

    pi, _ = _tabular(mdp, pi, np.zeros(mdp.n_states))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    S, A = mdp.n_states, mdp.n_actions
    if k == 0:
        return np.broadcast_to(np.eye(S)[:, None, :], (S, A, S)).copy()
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    return mdp.P @ np.linalg.matrix_power(P_pi, k - 1)


def k_step_mean(mdp: Any, pi: Any, V: Any, k: int) -> np.ndarray:
    """:math:`\\mathbb E[\\hat A^{(k)}_t \\mid s_t = s, a_t = a]` exactly, shape ``(S, A)``.

    Computed backwards, without :math:`V_\\pi`: with :math:`W_0 = V` and
    :math:`W_j = T^\\pi W_{j-1}` (``k - 1`` Bellman expectation backups of the critic),
    :math:`\\mathbb E[\\hat A^{(k)}_t \\mid s, a] = r(s, a) + \\gamma \\sum_{s'} P(s' \\mid s, a)
    W_{k-1}(s') - V(s)`: the expected discounted rewards of the ``k`` steps, then the
    bootstrap :math:`\\gamma^k V(s_{t+k})` (Chapter 6, eq. ``k-step``).
    """
    from companion import mdp as _mdp

    pi, V = _tabular(mdp, pi, V)
    k = check_positive_int(k, "k")
    W = V
    for _ in range(k - 1):
        W = _mdp.bellman_expectation_backup(mdp, pi, W)
    return mdp.R + mdp.gamma * mdp.P @ W - V[:, None]


def k_step_bias(mdp: Any, pi: Any, V: Any, k: int) -> np.ndarray:
    """Bias of the :math:`k`-step advantage estimator, shape ``(S, A)`` (Chapter 6, eq. ``k-step-bias``).

    With the critic's error :math:`e = V - V_\\pi`,

    .. math::

        \\mathbb E[\\hat A^{(k)}_t \\mid s_t, a_t] - A_\\pi(s_t, a_t)
        = \\gamma^k\\, \\mathbb E[e(s_{t+k}) \\mid s_t, a_t] - e(s_t).

    The first term depends on the action and vanishes as :math:`k \\to \\infty` (for
    :math:`\\gamma < 1`); the second, :math:`-e(s_t)`, does not, but depends on the state
    only, so its contribution to the expected policy gradient is zero.
    """
    from companion import mdp as _mdp

    pi, V = _tabular(mdp, pi, V)
    k = check_positive_int(k, "k")
    e = V - _mdp.value_function(mdp, pi)
    return mdp.gamma**k * state_law(mdp, pi, k) @ e - e[:, None]


def k_step_bias_gap(
    bias: Callable[[Any, np.ndarray, np.ndarray, int], Any],
    mdp: Any,
    pi: Any,
    V: Any,
    ks: Sequence[int],
) -> float:
    """Largest gap between a claimed bias formula and the exact bias of :math:`\\hat A^{(k)}`.

    ``bias(mdp, pi, V, k)`` returns an ``(S, A)`` array; it is compared with
    :func:`k_step_mean` minus the exact advantage :math:`A_\\pi` (a linear solve) for
    every ``k`` in ``ks``. Returns :math:`\\max_{k, s, a}` of the absolute difference; the
    correct formula (:func:`k_step_bias`) gives rounding error only.
    """
    from companion import mdp as _mdp

    pi, V = _tabular(mdp, pi, V)
    A_pi = _mdp.advantage_function(mdp, pi)
    gaps = []
    for k in ks:
        claimed = as_array(bias(mdp, pi, V, k), "bias(mdp, pi, V, k)", shape=A_pi.shape)
        gaps.append(np.max(np.abs(claimed - (k_step_mean(mdp, pi, V, k) - A_pi))))
    if not gaps:
        raise ValueError("ks must contain at least one k")
    return float(max(gaps))


def gae_moments(mdp: Any, pi: Any, V: Any, lams: Any, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and second moment of :math:`\\hat A_0` given :math:`(s_0, a_0) = (s, a)`.

    The estimator is what :func:`gae` returns at the first step of a segment of
    ``horizon`` steps that follows ``pi`` (rewards :math:`r(s, a)` of ``mdp``, critic
    ``V``), whose last step is marked truncated so that it bootstraps:
    :math:`\\hat A_0 = \\sum_{l < H} (\\gamma\\lambda)^l \\delta_l`. With
    :math:`X_l = \\delta_l + \\gamma\\lambda X_{l+1}`, :math:`X_H = 0`, the conditional
    moments :math:`m_l(s, a) = \\mathbb E[X_l \\mid s, a]` and
    :math:`M_l(s, a) = \\mathbb E[X_l^2 \\mid s, a]` follow backwards from the Markov
    property, since :math:`\\delta_l` is a function of :math:`(s_l, a_l, s_{l+1})`.

    Returns ``(mean, second)``, each of shape ``(len(lams), S, A)``.
    """
    pi, V = _tabular(mdp, pi, V)
    horizon = check_positive_int(horizon, "horizon")
    lams = np.atleast_1d(as_array(lams, "lams"))
    if lams.ndim != 1 or np.any((lams < 0) | (lams > 1)):
        raise ValueError(f"lams must be numbers in [0, 1], got {lams}")
    g = mdp.gamma
    delta = mdp.R[:, :, None] + g * V[None, None, :] - V[:, None, None]  # (S, A, S')
    c = (g * lams)[:, None, None, None]  # (L, 1, 1, 1)
    L, S = len(lams), mdp.n_states
    m_next, M_next = np.zeros((L, S)), np.zeros((L, S))  # state averages at step l + 1
    for _ in range(horizon):
        mean = np.sum(mdp.P * (delta + c * m_next[:, None, None, :]), axis=-1)
        second = np.sum(
            mdp.P * (delta**2 + 2 * c * delta * m_next[:, None, None, :] + c**2 * M_next[:, None, None, :]),
            axis=-1,
        )
        m_next, M_next = np.einsum("sa,lsa->ls", pi, mean), np.einsum("sa,lsa->ls", pi, second)
    return mean, second


def softmax_gradient_error(
    mdp: Any, pi: Any, V: Any, s0: int, lams: Any, horizon: int, target: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Squared bias and variance of the GAE policy-gradient estimate at a start state.

    For a tabular softmax policy the contribution of :math:`(s_0, a_0)` to the gradient
    with respect to the logits of :math:`s_0` is
    :math:`\\hat g = \\hat A_0 (\\mathbf e_{a_0} - \\pi(\\cdot \\mid s_0))`, with target
    :math:`g = \\pi(\\cdot \\mid s_0) \\odot A_\\pi(s_0, \\cdot)`. From the exact moments of
    :func:`gae_moments`: returns ``(bias2, var)`` with
    ``bias2`` :math:`= \\|\\mathbb E \\hat g - g\\|^2` and ``var`` :math:`= \\mathbb E\\|\\hat g -
    \\mathbb E \\hat g\\|^2`, per sample, each of shape ``(len(lams),)``.

    ``target`` (shape ``(A,)``) replaces :math:`g`: use it to measure the estimates of a
    copy of ``mdp`` with a smaller discount against the gradient of the original problem.
    """
    from companion import mdp as _mdp

    pi, V = _tabular(mdp, pi, V)
    if not 0 <= s0 < mdp.n_states:
        raise ValueError(f"s0 must be in [0, {mdp.n_states}), got {s0!r}")
    mean, second = gae_moments(mdp, pi, V, lams, horizon)
    A = mdp.n_actions
    scores = np.eye(A) - pi[s0]  # row a: e_a - pi(.|s0)
    if target is None:
        g_true = pi[s0] * _mdp.advantage_function(mdp, pi)[s0]
    else:
        g_true = as_array(target, "target", shape=(A,))
    g_mean = np.einsum("a,la,ab->lb", pi[s0], mean[:, s0], scores)
    g_second = np.einsum("a,la,a->l", pi[s0], second[:, s0], np.sum(scores**2, axis=1))
    bias2 = np.sum((g_mean - g_true) ** 2, axis=1)
    var = g_second - np.sum(g_mean**2, axis=1)
    return bias2, var


def moment_z_scores(samples: Any, mean: Any, var: Any) -> tuple[float, float]:
    """How far sampled vectors are from a claimed mean and total variance, in standard errors.

    ``samples`` has shape ``(n, d)`` (``n`` independent draws of a ``d``-vector), ``mean``
    shape ``(d,)`` and ``var`` is the claimed :math:`\\mathbb E\\|x - \\mathbb E x\\|^2`.
    Returns ``(z_mean, z_var)``: the largest :math:`|\\bar x_i - \\text{mean}_i|` over
    its standard error, and :math:`|\\hat v - \\text{var}|` over the standard error of the
    sample total variance :math:`\\hat v` (from the spread of
    :math:`\\|x - \\bar x\\|^2`). A claim is consistent with the samples when both are
    below a few units (the chapter uses 5).
    """
    x = as_array(samples, "samples", ndim=2)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"samples needs at least 2 rows, got {n}")
    mean = as_array(mean, "mean", shape=(d,))
    var = float(as_array(var, "var", shape=()))
    xbar = x.mean(axis=0)
    se_mean = x.std(axis=0, ddof=1) / np.sqrt(n)
    z_mean = float(np.max(np.abs(xbar - mean) / np.maximum(se_mean, 1e-300)))
    sq = np.sum((x - xbar) ** 2, axis=1)
    v_hat = sq.sum() / (n - 1)
    z_var = float(abs(v_hat - var) / max(sq.std(ddof=1) / np.sqrt(n), 1e-300))
    return z_mean, z_var


# --- the checks of Chapter 6, as functions that a test can feed wrong versions to -------

#: The worked example of Chapter 6 ("Computing it"): a two-step episode that terminates,
#: then a two-step episode that is truncated; gamma = lambda = 0.5, critic V = 2.
BOUNDARY_EXAMPLE = dict(
    rewards=np.array([1.0, 1.0, 2.0, 1.0]),
    values=np.full(4, 2.0),
    next_values=np.full(4, 2.0),
    terminated=np.array([0.0, 1.0, 0.0, 0.0]),
    truncated=np.array([0.0, 0.0, 0.0, 1.0]),
    gamma=0.5,
    lam=0.5,
)


def episode_boundary_gap(gae_fn: Callable[..., Any], expected: Sequence[float]) -> float:
    """Largest gap between ``gae_fn`` on :data:`BOUNDARY_EXAMPLE` and a hand computation.

    ``gae_fn`` has the signature of :func:`gae` and ``expected`` holds the four advantages
    worked out by hand in Chapter 6. The example is built so that each plausible bug
    changes the answer: a truncation treated as a termination (step 3), a recursion that
    runs across the episode boundary (step 1 picks up :math:`\\hat A_2 \\ne 0`), and a
    recursion that drops :math:`\\lambda` (step 0, since :math:`\\lambda < 1`).
    """
    exp = as_array(expected, "expected", shape=(4,))
    got = as_array(gae_fn(**BOUNDARY_EXAMPLE), "gae_fn(...)", shape=(4,))
    return float(np.max(np.abs(got - exp)))


def gae_loops(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Eq. ``gae-recursion`` written as plainly as possible: two nested Python loops.

    Arrays of shape ``(T, N)``. Shares no code with :func:`gae` (a reference for it).
    """
    T, N = np.shape(rewards)
    adv = np.zeros((T, N))
    for n in range(N):
        last = 0.0
        for t in reversed(range(T)):
            boot = gamma * (1 - terminated[t, n]) * next_values[t, n]
            delta = rewards[t, n] + boot - values[t, n]
            done = terminated[t, n] or truncated[t, n]
            last = delta + gamma * lam * (1 - done) * last
            adv[t, n] = last
    return adv


def gae_loops_gap(gae_fn: Callable[..., Any], batch: dict, gamma: float, lam: float) -> float:
    """Largest gap between ``gae_fn(**batch, gamma=..., lam=...)`` and :func:`gae_loops`.

    ``batch`` holds ``rewards, values, next_values, terminated, truncated`` of shape
    ``(T, N)``; torch outputs are converted to numpy.
    """
    got = gae_fn(**batch, gamma=gamma, lam=lam)
    if _is_torch(got):
        got = got.detach().cpu().numpy()
    ref = gae_loops(**{k: np.asarray(v) for k, v in batch.items()}, gamma=gamma, lam=lam)
    return float(np.max(np.abs(as_array(got, "gae_fn(...)", shape=ref.shape) - ref)))


def k_step_mean_z(
    reference: Callable[[Any, np.ndarray, np.ndarray, int], Any],
    mdp: Any,
    pi: Any,
    V: Any,
    k: int,
    state: int,
    action: int,
    n_samples: int,
    seed: int,
) -> float:
    """How many standard errors a claimed mean of :math:`\\hat A^{(k)}` is from sampling.

    Samples ``n_samples`` segments of ``k`` steps from ``(state, action)``, evaluates the
    first expression of eq. ``k-step`` on each, and returns
    :math:`|\\bar x - \\text{reference}(mdp, pi, V, k)[state, action]|` over the standard
    error of :math:`\\bar x`. The right reference (:func:`k_step_mean`) gives a value of
    order 1.
    """
    from companion import mdp as _mdp

    pi, V = _tabular(mdp, pi, V)
    k = check_positive_int(k, "k")
    n = check_positive_int(n_samples, "n_samples")
    st, _, rw = _mdp.sample_batch(mdp, pi, n, k, start_state=state, start_action=action, seed=seed)
    x = mdp.gamma ** np.arange(k) @ rw + mdp.gamma**k * V[st[k]] - V[state]
    claimed = as_array(reference(mdp, pi, V, k), "reference(...)", shape=mdp.R.shape)
    return float(abs(x.mean() - claimed[state, action]) / (x.std(ddof=1) / np.sqrt(n)))


def _gradient_moments(pi: np.ndarray, s0: int, mean: np.ndarray, second: np.ndarray) -> tuple:
    scores = np.eye(pi.shape[1]) - pi[s0]
    g_mean = np.einsum("a,la,ab->lb", pi[s0], mean[:, s0], scores)
    g_second = np.einsum("a,la,a->l", pi[s0], second[:, s0], np.sum(scores**2, axis=1))
    return g_mean, g_second - np.sum(g_mean**2, axis=1)


def gae_moment_z(
    mdp: Any,
    pi: Any,
    V: Any,
    lams: Any,
    states: Any,
    actions: Any,
    rewards: Any,
    moments: Callable[..., tuple] = gae_moments,
) -> tuple[float, np.ndarray]:
    """Claimed exact moments of the GAE gradient estimate against sampled trajectories.

    ``states, actions, rewards`` (shapes ``(H + 1, N)``, ``(H, N)``, ``(H, N)``, from
    :func:`companion.mdp.sample_batch`) are ``N`` segments of ``H`` steps from one start
    state :math:`s_0 =` ``states[0, 0]``. Each is fed to :func:`gae` with its last step
    marked truncated; :math:`\\hat g = \\hat A_0 (\\mathbf e_{a_0} - \\pi(\\cdot\\mid s_0))`
    is compared with the mean and total variance implied by
    ``moments(mdp, pi, V, lams, H)`` (default :func:`gae_moments`) through
    :func:`moment_z_scores`. Returns ``(worst_z, A_hat)``: the largest z over all
    ``lams`` and all components, and the sampled :math:`\\hat A_0`, shape ``(L, N)``.
    """
    pi, V = _tabular(mdp, pi, V)
    st = as_array(states, "states", ndim=2)
    s0 = int(st[0, 0])
    if np.any(st[0] != s0):
        raise ValueError("states must all start in the same state")
    rw = as_array(rewards, "rewards", shape=(st.shape[0] - 1, st.shape[1]))
    ac = np.asarray(actions, dtype=int)
    if ac.shape != rw.shape:
        raise ValueError(f"actions must have shape {rw.shape}, got {ac.shape}")
    if np.any((st < 0) | (st >= mdp.n_states) | (st != np.round(st))):
        raise ValueError(f"states must be integers in [0, {mdp.n_states})")
    if np.any((ac < 0) | (ac >= mdp.n_actions)):
        raise ValueError(f"actions must be integers in [0, {mdp.n_actions})")
    H, N = rw.shape
    lams = np.atleast_1d(as_array(lams, "lams"))
    mean, second = moments(mdp, pi, V, lams, H)
    g_mean, var = _gradient_moments(pi, s0, np.asarray(mean), np.asarray(second))
    last = np.zeros((H, N), dtype=bool)
    last[-1] = True
    no_term = np.zeros((H, N))
    st = st.astype(int)
    scores = np.eye(mdp.n_actions)[ac[0]] - pi[s0]
    A_hat = np.stack([gae(rw, V[st[:-1]], V[st[1:]], no_term, last, mdp.gamma, lam)[0] for lam in lams])
    worst = 0.0
    for i in range(len(lams)):
        worst = max(worst, *moment_z_scores(A_hat[i][:, None] * scores, g_mean[i], var[i]))
    return worst, A_hat


def gae_mixture_weights(lam: float, horizon: int) -> np.ndarray:
    """Weights of :math:`\\hat A^{(1)}, \\ldots, \\hat A^{(H)}` in GAE over a segment of ``H`` steps.

    :math:`(1-\\lambda)\\lambda^{k-1}` for :math:`k < H` and the tail weight
    :math:`\\lambda^{H-1}` on :math:`\\hat A^{(H)}` (Chapter 6, eq. ``gae-definition``).
    """
    lam = check_unit_interval(lam, "lam")
    H = check_positive_int(horizon, "horizon")
    w = (1 - lam) * lam ** np.arange(H, dtype=float)
    w[-1] = lam ** (H - 1)
    return w


def gae_bias_mixture_gap(
    mdp: Any,
    pi: Any,
    V: Any,
    lams: Any,
    horizon: int,
    weights: Callable[[float, int], Any] = gae_mixture_weights,
    bias: Callable[[Any, np.ndarray, np.ndarray, int], Any] = k_step_bias,
) -> float:
    """Largest gap between the GAE bias and a mixture of :math:`k`-step biases.

    The exact bias is the mean of :func:`gae_moments` minus :math:`A_\\pi`; the mixture
    is :math:`\\sum_{k=1}^{H} w_k(\\lambda)\\,\\text{bias}(mdp, pi, V, k)` with
    ``weights(lam, H)`` (length ``H``). The two share no code. Returns the largest
    absolute gap over all ``lams`` and all :math:`(s, a)`.
    """
    from companion import mdp as _mdp

    pi, V = _tabular(mdp, pi, V)
    H = check_positive_int(horizon, "horizon")
    lams = np.atleast_1d(as_array(lams, "lams"))
    mean, _ = gae_moments(mdp, pi, V, lams, H)
    A_pi = _mdp.advantage_function(mdp, pi)
    bias_k = np.stack([bias(mdp, pi, V, k) for k in range(1, H + 1)])
    gap = 0.0
    for i, lam in enumerate(lams):
        w = as_array(weights(float(lam), H), "weights(lam, H)", shape=(H,))
        gap = max(gap, float(np.max(np.abs(mean[i] - A_pi - np.tensordot(w, bias_k, axes=1)))))
    return gap


def terminated_identity_failures(
    T: int,
    residual: Callable[..., Any] | None = None,
    weight: Callable[..., Any] | None = None,
) -> list[str]:
    """Which identities of :prf:ref:`thm-gae-sum` fail, symbolically, on a terminated episode.

    Symbols ``r_0..r_{T-1}``, ``V_0..V_{T-1}``, ``gamma``, ``lambda``; the episode
    terminates after step ``T - 1``. ``residual(l, r, V, gamma, T)`` gives
    :math:`\\delta_l` (default: :math:`r_l + \\gamma V_{l+1} - V_l`, with no value after
    the terminal step); ``weight(k, lam, T)`` gives the weight of :math:`\\hat A^{(k)}_0`
    (default: :math:`(1-\\lambda)\\lambda^{k-1}` for :math:`k < T`, :math:`\\lambda^{T-1}`
    for :math:`k = T`). Returns the names of the failing identities among
    ``"weighted average = residual sum"``, ``"lambda = 0 is the TD residual"`` and
    ``"lambda = 1 is Monte Carlo minus V"``; an empty list when all hold.
    """
    import sympy as sp

    T = check_positive_int(T, "T")
    g = sp.Symbol("gamma", positive=True)
    lam = sp.Symbol("lambda", positive=True)
    rs, Vs = sp.symbols(f"r_0:{T}", real=True), sp.symbols(f"V_0:{T}", real=True)
    rs, Vs = tuple(np.atleast_1d(rs)), tuple(np.atleast_1d(Vs))
    if residual is None:

        def residual(l, r, V, gamma, T):
            return r[l] + gamma * (V[l + 1] if l + 1 < T else 0) - V[l]

    if weight is None:

        def weight(k, lam, T):
            return lam ** (T - 1) if k == T else (1 - lam) * lam ** (k - 1)

    delta = [residual(l, rs, Vs, g, T) for l in range(T)]

    def A_k(k):  # k-step estimate from step 0, stopped at the end of the episode
        return sum(g**l * delta[l] for l in range(min(k, T)))

    weighted = sum(weight(k, lam, T) * A_k(k) for k in range(1, T + 1))
    gae_sum = sum((g * lam) ** l * delta[l] for l in range(T))
    failures = []
    if sp.expand(weighted - gae_sum) != 0:
        failures.append("weighted average = residual sum")
    if sp.expand(gae_sum.subs(lam, 0) - delta[0]) != 0:
        failures.append("lambda = 0 is the TD residual")
    mc_minus_v = sum(g**l * rs[l] for l in range(T)) - Vs[0]
    if sp.expand(gae_sum.subs(lam, 1) - mc_minus_v) != 0:
        failures.append("lambda = 1 is Monte Carlo minus V")
    return failures
