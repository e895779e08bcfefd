"""Checkers for the book's coding exercises.

Each ``check_*`` function takes the reader's function (or value), runs it on test cases
that the reader does not see, compares with the companion's reference implementation
and either

* prints one sentence saying what is right and returns ``True``, or
* raises :class:`ExerciseFailure` (an ``AssertionError``) whose message says, in one
  sentence, what is wrong (which entry, by how much) without giving the solution away.

Because a failure raises, an executed notebook (the book build, nbval) fails when a
solution does not pass its checker.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from companion import mdp as _mdp

__all__ = [
    "ExerciseFailure",
    "check_policy_evaluation",
    "check_v_from_q",
    "check_expected_td_residual",
    "check_reward_to_go",
    "check_gaussian_score",
    "check_action_baseline_estimator",
    "check_k_step_advantage",
    "check_monte_carlo_advantage",
    "check_performance_difference",
    "check_surrogate",
    "check_cpi_step_size",
    "check_conjugate_gradient",
    "check_fisher_vector_product",
    "check_clipped_surrogate",
    "check_approx_kl",
    "check_group_advantages",
    "check_k3_expectation",
]


class ExerciseFailure(AssertionError):
    """Raised by a checker when the reader's answer is wrong; the message says why."""


def _fail(message: str) -> None:
    raise ExerciseFailure(message)


def _passed(message: str) -> bool:
    print(f"Correct: {message}")
    return True


def _call(fn: Callable[..., Any], name: str, *args: Any) -> Any:
    """Call the reader's function, turning a stub or a crash into a one-sentence failure."""
    try:
        return fn(*args)
    except NotImplementedError:
        _fail(f"`{name}` is not implemented yet: replace the `raise NotImplementedError` line with your code.")
    except ExerciseFailure:
        raise
    except Exception as exc:  # the reader's bug: report it, do not crash the checker
        _fail(f"`{name}` raised {type(exc).__name__}: {exc}")


def _compare(
    got: Any,
    expected: np.ndarray,
    what: str,
    axis_names: Sequence[str],
    context: str,
    atol: float = 1e-6,
) -> None:
    """Fail with the first (largest) mismatching entry of ``got`` against ``expected``."""
    if got is None:
        _fail(f"{what} returned None; it must return an array of shape {expected.shape}.")
    try:
        arr = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        _fail(f"{what} must be an array of numbers, got {type(got).__name__}.")
    if arr.shape != expected.shape:
        _fail(f"{what} has shape {arr.shape}, expected {expected.shape} {context}.")
    if not np.all(np.isfinite(arr)):
        _fail(f"{what} contains NaN or inf {context}.")
    err = arr - expected
    worst = np.unravel_index(np.argmax(np.abs(err)), err.shape)
    if abs(err[worst]) > atol:
        where = ", ".join(f"{n}={int(i)}" for n, i in zip(axis_names, worst))
        _fail(f"{what} is off at {where} by {err[worst]:+.4g} {context}.")


def _test_mdps() -> list[tuple[str, _mdp.TabularMDP, np.ndarray]]:
    """Small MDPs and policies the checkers test on (the reader never needs them)."""
    cases = []
    # a hand-sized MDP: state 1 is absorbing with reward 1 for action 0
    P = np.array([[[0.5, 0.5], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    R = np.array([[0.0, 0.2], [1.0, 0.0]])
    hand = _mdp.TabularMDP(P, R, 0.9, np.array([1.0, 0.0]))
    cases.append(("on a 2-state test MDP", hand, np.array([[0.5, 0.5], [0.9, 0.1]])))
    for seed, (S, A, g) in enumerate([(3, 2, 0.8), (5, 3, 0.95)]):
        m = _mdp.random_mdp(S, A, gamma=g, seed=100 + seed)
        pi = _mdp.random_policy(S, A, seed=200 + seed)
        cases.append((f"on a random {S}-state, {A}-action MDP with gamma={g}", m, pi))
    return cases


def check_policy_evaluation(policy_evaluation: Callable[..., Any]) -> bool:
    """Check ``policy_evaluation(P, R, gamma, pi) -> V`` against the exact :math:`V_\\pi`."""
    for context, m, pi in _test_mdps():
        got = _call(policy_evaluation, "policy_evaluation", m.P.copy(), m.R.copy(), m.gamma, pi.copy())
        _compare(got, _mdp.value_function(m, pi), "your V", ["state"], context)
    return _passed("policy_evaluation matches the exact value function on every test MDP.")


def check_v_from_q(v_from_q: Callable[..., Any]) -> bool:
    """Check ``v_from_q(Q, pi) -> V`` with :math:`V_\\pi(s) = \\sum_a \\pi(a|s) Q_\\pi(s,a)`."""
    for context, m, pi in _test_mdps():
        Q = _mdp.q_function(m, pi)
        got = _call(v_from_q, "v_from_q", Q.copy(), pi.copy())
        _compare(got, _mdp.value_function(m, pi), "your V", ["state"], context)
    return _passed("v_from_q recovers V_pi from Q_pi on every test MDP.")


def check_expected_td_residual(expected_td_residual: Callable[..., Any]) -> bool:
    """Check ``expected_td_residual(P, R, gamma, V) -> (S, A)`` array of :math:`\\mathbb E_{s'}[\\delta]`.

    Tested both with :math:`V = V_\\pi` (where the answer is the advantage) and with an
    arbitrary :math:`V`, so that returning the advantage by another route does not pass.
    """
    rng = np.random.default_rng(7)
    for context, m, pi in _test_mdps():
        for V, label in [(_mdp.value_function(m, pi), "with V = V_pi"), (rng.normal(size=m.n_states), "with a random V")]:
            got = _call(expected_td_residual, "expected_td_residual", m.P.copy(), m.R.copy(), m.gamma, V.copy())
            expected = m.R + m.gamma * m.P @ V - V[:, None]
            _compare(got, expected, "your expected TD residual", ["state", "action"], f"{context}, {label}")
    return _passed("expected_td_residual is right, and at V = V_pi it equals the advantage A_pi.")


# ----------------------------------------------------------------------------- Chapter 2


def check_reward_to_go(reward_to_go: Callable[..., Any]) -> bool:
    """Check ``reward_to_go(rewards, gamma) -> R`` with :math:`R_t = \\sum_{j \\ge t} \\gamma^{j-t} r_j`."""
    from companion.pg import reward_to_go as reference

    rng = np.random.default_rng(11)
    cases = [
        (np.array([1.0, 1.0, 1.0]), 1.0, "for rewards [1, 1, 1] with gamma=1"),
        (np.array([0.0, 0.0, 1.0]), 0.5, "for rewards [0, 0, 1] with gamma=0.5"),
        (rng.normal(size=50), 0.97, "for 50 random rewards with gamma=0.97"),
        (np.array([2.0]), 0.9, "for a single reward"),
    ]
    for rewards, gamma, context in cases:
        got = _call(reward_to_go, "reward_to_go", rewards.copy(), gamma)
        _compare(got, reference(rewards, gamma), "your reward-to-go", ["t"], context)
    return _passed("reward_to_go is right, including discounting and length-1 trajectories.")


def check_gaussian_score(gaussian_score: Callable[..., Any]) -> bool:
    """Check ``gaussian_score(a, mu, sigma) -> (d/dmu, d/dsigma)`` of :math:`\\log \\mathcal N(a; \\mu, \\sigma^2)` (SymPy)."""
    import sympy as sp

    a, mu = sp.symbols("a mu", real=True)
    sigma = sp.Symbol("sigma", positive=True)
    got = _call(gaussian_score, "gaussian_score", a, mu, sigma)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        _fail("gaussian_score must return a pair (d log p / d mu, d log p / d sigma).")
    log_p = -((a - mu) ** 2) / (2 * sigma**2) - sp.log(sigma) - sp.log(2 * sp.pi) / 2
    for name, expr, var in [("d/dmu", got[0], mu), ("d/dsigma", got[1], sigma)]:
        try:
            diff = sp.simplify(sp.sympify(expr) - sp.diff(log_p, var))
        except (sp.SympifyError, TypeError) as exc:
            _fail(f"the {name} component is not a SymPy expression ({exc}).")
        if diff != 0:
            value = diff.subs({a: 1, mu: 0, sigma: 2})
            _fail(f"the {name} component is off by {value} at a=1, mu=0, sigma=2.")
    density = sp.exp(log_p)
    for name, expr in [("d/dmu", got[0]), ("d/dsigma", got[1])]:
        mean = sp.simplify(sp.integrate(sp.sympify(expr) * density, (a, -sp.oo, sp.oo)))
        if mean != 0:  # cannot happen for a correct score; kept as the lemma's check
            _fail(f"the {name} score does not average to zero (got {mean}).")
    return _passed("both components of the Gaussian score are right, and each has zero mean under the policy.")


def check_action_baseline_estimator(estimator: Callable[..., Any]) -> bool:
    """Check ``estimator(theta, states, actions, rewards, b) -> (S, A)``: reward-to-go minus ``b[s_t, a_t]``."""
    from companion.pg import reinforce_gradient

    rng = np.random.default_rng(5)
    for T, S, A in [(1, 2, 2), (6, 3, 2), (20, 4, 3)]:
        theta = rng.normal(size=(S, A))
        states, actions = rng.integers(S, size=T), rng.integers(A, size=T)
        rewards, b = rng.normal(size=T), rng.normal(size=(S, A))
        got = _call(estimator, "estimator", theta.copy(), states.copy(), actions.copy(), rewards.copy(), b.copy())
        expected = reinforce_gradient(theta, states, actions, rewards, gamma=1.0, baseline=b[states, actions])
        _compare(got, expected, "your estimate", ["state", "action"], f"on a random trajectory of length {T}")
    return _passed("the action-dependent-baseline estimator is implemented as specified.")


# ----------------------------------------------------------------------------- Chapter 6 (GAE)


def check_k_step_advantage(k_step: Callable[..., Any]) -> bool:
    """Check ``k_step(rewards, values, gamma, k)`` against :func:`companion.gae.k_step_advantage`."""
    from companion.gae import k_step_advantage

    rng = np.random.default_rng(21)
    cases = [(np.ones(3), np.zeros(4), 0.5, 2, "for rewards [1, 1, 1], zero values, gamma=0.5, k=2")]
    for T, k in [(8, 1), (8, 3), (8, 8), (8, 20), (1, 2)]:
        cases.append((rng.normal(size=T), rng.normal(size=T + 1), 0.9, k, f"for a random segment of length {T} with k={k}"))
    for rewards, values, gamma, k, context in cases:
        got = _call(k_step, "k_step", rewards.copy(), values.copy(), gamma, k)
        _compare(got, k_step_advantage(rewards, values, gamma, k), "your A^(k)", ["t"], context)
    return _passed("k_step matches the k-step advantage, including the bootstrap at the end of the segment.")


def check_monte_carlo_advantage(monte_carlo_advantage: Callable[..., Any]) -> bool:
    """Check ``monte_carlo_advantage(rewards, values, gamma)`` against GAE with :math:`\\lambda = 1`."""
    from companion.gae import gae

    rng = np.random.default_rng(22)
    for T, gamma in [(1, 0.9), (5, 1.0), (30, 0.97)]:
        rewards, values = rng.normal(size=T), rng.normal(size=T)
        terminated = np.zeros(T)
        terminated[-1] = 1
        expected = gae(rewards, values, np.append(values[1:], 0.0), terminated, np.zeros(T), gamma, 1.0)
        got = _call(monte_carlo_advantage, "monte_carlo_advantage", rewards.copy(), values.copy(), gamma)
        _compare(got, expected, "your advantage", ["t"], f"on a terminated episode of length {T}, gamma={gamma}")
    return _passed("Monte Carlo return minus V equals GAE with lambda = 1 on every test episode.")


# ----------------------------------------------------------------------------- Chapter 3 (CPI)


def _policy_pairs() -> list[tuple[str, _mdp.TabularMDP, np.ndarray, np.ndarray]]:
    out = []
    for context, m, pi in _test_mdps():
        other = _mdp.random_policy(m.n_states, m.n_actions, seed=m.n_states * 31)
        out.append((context, m, pi, other))
    return out


def _scalar(got: Any, what: str) -> float:
    try:
        value = float(np.asarray(got, dtype=np.float64))
    except (TypeError, ValueError):
        _fail(f"{what} must return a single number, got {type(got).__name__}.")
    if not np.isfinite(value):
        _fail(f"{what} returned {value}.")
    return value


def check_performance_difference(performance_difference: Callable[..., Any]) -> bool:
    """Check ``performance_difference(P, R, gamma, mu, pi, pi_new)`` against :math:`J(\\pi') - J(\\pi)`."""
    for context, m, pi, other in _policy_pairs():
        for a, b, label in [(pi, other, "pi -> pi_new"), (other, pi, "pi_new -> pi"), (pi, pi, "pi -> pi")]:
            got = _scalar(_call(performance_difference, "performance_difference",
                                m.P.copy(), m.R.copy(), m.gamma, m.mu.copy(), a.copy(), b.copy()),
                          "performance_difference")
            want = _mdp.expected_return(m, b) - _mdp.expected_return(m, a)
            if abs(got - want) > 1e-8:
                _fail(f"your value is off by {got - want:+.4g} {context} ({label}); "
                      "check which policy's visitation and which policy's advantage you use.")
    return _passed("performance_difference equals J(pi_new) - J(pi) on every test pair: the lemma holds.")


def check_surrogate(surrogate_L: Callable[..., Any]) -> bool:
    """Check ``surrogate_L(P, R, gamma, mu, pi, pi_new)``: its value, and first-order agreement with :math:`J`."""
    from companion.cpi import surrogate

    for context, m, pi, other in _policy_pairs():
        def L(new: np.ndarray) -> float:
            return _scalar(_call(surrogate_L, "surrogate_L", m.P.copy(), m.R.copy(), m.gamma,
                                 m.mu.copy(), pi.copy(), new.copy()), "surrogate_L")

        got, want = L(other), surrogate(m, pi, other)
        if abs(got - want) > 1e-8:
            _fail(f"L_pi(pi_new) is off by {got - want:+.4g} {context}.")
        if abs(L(pi) - _mdp.expected_return(m, pi)) > 1e-8:
            _fail(f"L_pi(pi) should equal J(pi) {context}.")
        h = 1e-6  # directional derivative along the mixture towards `other`
        slope_L = (L((1 - h) * pi + h * other) - L(pi)) / h
        slope_J = (_mdp.expected_return(m, (1 - h) * pi + h * other) - _mdp.expected_return(m, pi)) / h
        if abs(slope_L - slope_J) > 1e-4 * (1 + abs(slope_J)):
            _fail(f"the slope of L at pi ({slope_L:.5g}) differs from that of J ({slope_J:.5g}) {context}.")
    return _passed("surrogate_L has the right value and the same first-order behaviour as J at pi.")


def check_cpi_step_size(step_size: Callable[..., Any]) -> bool:
    """Check ``step_size(policy_adv, eps, gamma)`` against :func:`companion.cpi.cpi_step_size`."""
    from companion.cpi import cpi_step_size

    cases = [(0.1, 0.5, 0.9), (0.4, 0.4, 0.2), (-0.1, 0.3, 0.9), (0.0, 0.3, 0.9), (0.05, 0.08, 0.99)]
    for adv, eps, gamma in cases:
        got = _scalar(_call(step_size, "step_size", adv, eps, gamma), "step_size")
        want = cpi_step_size(adv, eps, gamma)
        if abs(got - want) > 1e-12:
            _fail(f"step_size({adv}, {eps}, {gamma}) is off by {got - want:+.4g}.")
    return _passed("step_size gives alpha* in every case, including the cap at 1 and non-positive advantages.")


# ----------------------------------------------------------------------------- Chapter 4 (TRPO)


def check_conjugate_gradient(cg: Callable[..., Any]) -> bool:
    """Check ``cg(Avp, b, n_iters)`` on SPD systems: exact after ``n`` iterations, and each product counted."""
    rng = np.random.default_rng(41)
    for n in (1, 4, 12):
        M_ = rng.normal(size=(n, n))
        A = M_ @ M_.T + n * np.eye(n)
        b = rng.normal(size=n)
        calls = []

        def Avp(v: np.ndarray) -> np.ndarray:
            calls.append(1)
            return A @ v

        got = _call(cg, "cg", Avp, b.copy(), n)
        _compare(got, np.linalg.solve(A, b), "your x", ["entry"], f"for a {n}x{n} system after {n} iterations", atol=1e-6)
        if len(calls) > n + 1:
            _fail(f"cg called Avp {len(calls)} times for n_iters={n}; conjugate gradient needs one product per iteration.")
    A = np.diag([1.0, 10.0, 100.0])
    got = _call(cg, "cg", lambda v: A @ v, np.ones(3), 1)
    # after one iteration from 0, CG is one exact line search along b: x = (b.b / b.A.b) b
    _compare(got, np.ones(3) * 3 / 111, "your x", ["entry"], "after a single iteration on diag(1, 10, 100)", atol=1e-9)
    return _passed("cg solves SPD systems exactly in n iterations, one matrix-vector product each.")


def check_fisher_vector_product(fvp: Callable[..., Any]) -> bool:
    """Check ``fvp(W, X, v)`` for a linear softmax policy against the explicit Fisher matrix."""
    import torch

    gen = torch.Generator().manual_seed(42)
    for n, d, A in [(1, 2, 2), (16, 3, 4)]:
        W = torch.randn(A, d, generator=gen, dtype=torch.float64)
        X = torch.randn(n, d, generator=gen, dtype=torch.float64)
        v = torch.randn(A * d, generator=gen, dtype=torch.float64)
        probs = torch.softmax(X @ W.T, -1)
        fisher = torch.zeros(A * d, A * d, dtype=torch.float64)
        for i in range(n):  # score of action a w.r.t. W: (e_a - pi) outer x
            for a in range(A):
                score = torch.outer(torch.eye(A, dtype=torch.float64)[a] - probs[i], X[i]).reshape(-1)
                fisher += probs[i, a] * torch.outer(score, score) / n
        got = _call(fvp, "fvp", W.clone(), X.clone(), v.clone())
        if not isinstance(got, torch.Tensor):
            _fail(f"fvp must return a torch tensor, got {type(got).__name__}.")
        _compare(got.detach().numpy(), (fisher @ v).numpy(), "your F v", ["entry"], f"for n={n}, d={d}, A={A}", atol=1e-8)
    return _passed("fvp equals the explicit Fisher matrix times v, without forming the matrix.")


# ----------------------------------------------------------------------------- Chapter 5 (PPO)


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


# ----------------------------------------------------------------------------- Chapter 7 (GRPO)


def check_group_advantages(fn: Callable[..., Any]) -> bool:
    """Check ``fn(rewards, scale)`` against :func:`companion.grpo.group_advantages` (numpy)."""
    from companion.grpo import group_advantages

    rng = np.random.default_rng(61)
    cases = [
        (np.array([[1.0, 0.0, 0.0, 1.0]]), "for the group [1, 0, 0, 1]"),
        (np.ones((1, 5)), "for a group whose rewards are all equal"),
        (rng.integers(0, 2, size=(6, 8)).astype(float), "for 6 random binary groups of 8"),
        (rng.normal(size=(3, 4)), "for 3 groups of real-valued rewards"),
    ]
    for rewards, context in cases:
        for scale in (True, False):
            got = _call(fn, "my_group_advantages", rewards.copy(), scale)
            label = f"{context} with scale={scale}"
            _compare(got, group_advantages(rewards, scale=scale), "your advantages", ["prompt", "output"], label, atol=1e-6)
    return _passed("group advantages are right, with and without the standard-deviation scaling.")


def check_k3_expectation(fn: Callable[..., Any]) -> bool:
    """Check ``fn(p, q)`` = :math:`\\mathbb E_{x \\sim p}[\\mathrm{k3}]` against :math:`D_{KL}(p \\| q)`."""
    rng = np.random.default_rng(62)
    for n, conc in [(2, 1.0), (3, 0.5), (10, 1.0), (10, 5.0)]:
        p, q = rng.dirichlet(np.full(n, conc)), rng.dirichlet(np.full(n, conc))
        p, q = np.clip(p, 1e-9, None), np.clip(q, 1e-9, None)
        p, q = p / p.sum(), q / q.sum()
        got = _scalar(_call(fn, "k3_expectation", p.copy(), q.copy()), "k3_expectation")
        kl = float(np.sum(p * np.log(p / q)))
        if abs(got - kl) > 1e-8 * max(1.0, kl):
            reverse = float(np.sum(q * np.log(q / p)))
            if abs(got - reverse) < 1e-8 * max(1.0, reverse):
                _fail("you computed KL(q || p): the tokens are sampled from p, so weight by p and use x = q / p.")
            _fail(f"your expectation is off from KL(p || q) = {kl:.5f} by {got - kl:+.3g} for {n} outcomes.")
    return _passed("the exact expectation of k3 equals KL(p || q) on every test pair.")
