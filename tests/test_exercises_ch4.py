"""The Chapter 4 checkers accept right answers (exact or iterative, float32) and reject
the wrong answers a reader is likely to write, without revealing the reference."""

import numpy as np
import pytest
import torch

from companion.exercises import ExerciseFailure
from companion.exercises import check_conjugate_gradient as check_cg
from companion.exercises import check_fisher_vector_product as check_fvp
from companion.trpo import conjugate_gradient


def _cg(Avp, b, n_iters, sign=1.0, extra_products=False, rtol_stop=0.0):
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = r @ r
    for _ in range(n_iters):
        if rr <= rtol_stop**2 * (b @ b) or rr == 0:
            break
        Ap = Avp(p)
        step = rr / (p @ Ap)
        x = x + sign * step * p
        r = b - Avp(x) if extra_products else r - step * Ap
        rr_new = r @ r
        p = r + rr_new / rr * p
        rr = rr_new
    return x


def _fvp(W, X, v, reduce="mean", sign=1.0, detach=True):
    W = W.detach().clone().requires_grad_(True)
    logp_old = torch.log_softmax(X @ W.T, -1)
    if detach:
        logp_old = logp_old.detach()
    kl = (logp_old.exp() * (logp_old - torch.log_softmax(X @ W.T, -1))).sum(-1)
    kl = kl.mean() if reduce == "mean" else kl.sum()
    (grad,) = torch.autograd.grad(kl, W, create_graph=True)
    (hvp,) = torch.autograd.grad((grad.reshape(-1) * v).sum(), W, allow_unused=True)
    if hvp is None:
        hvp = torch.zeros_like(W)
    return sign * hvp.reshape(-1)


def test_right_cg_answers_pass_exact_iterative_and_float32(capsys):
    assert check_cg(lambda Avp, b, n: _cg(Avp, b, n))
    assert check_cg(
        lambda Avp, b, n: conjugate_gradient(Avp, b, n)
    )  # stops at tol=1e-10
    assert check_cg(lambda Avp, b, n: _cg(Avp, b, n, rtol_stop=1e-8))  # stops early
    assert check_cg(lambda Avp, b, n: _cg(Avp, b, n).astype(np.float32))


@pytest.mark.parametrize(
    "wrong, phrase",
    [
        (
            lambda Avp, b, n: _cg(Avp, b, n, sign=-1.0),
            "off at",
        ),  # wrong sign of the update
        (lambda Avp, b, n: _cg(Avp, b, n, extra_products=True), "called Avp"),
        (lambda Avp, b, n: b / 10, "off at"),  # not a solve
        (lambda Avp, b, n: _cg(Avp, b, max(n - 1, 1)), "off at"),  # one iteration short
        (
            lambda Avp, b, n: _cg(Avp, b, n) * (1 + 1e-4),
            "off at",
        ),  # not accurate enough
        (lambda Avp, b, n: None, "returned None"),
    ],
)
def test_wrong_cg_answers_are_rejected_without_revealing_the_answer(wrong, phrase):
    with pytest.raises(ExerciseFailure, match=phrase) as exc:
        check_cg(wrong)
    assert "expected value" not in str(exc.value)
    # the message names the entry and the size of the error, not the reference value
    assert "3/111" not in str(exc.value) and "0.027" not in str(exc.value)


def test_right_fvp_answers_pass():
    assert check_fvp(_fvp)
    assert check_fvp(
        lambda W, X, v: _fvp(W, X, v).float()
    )  # float32 is accurate enough


@pytest.mark.parametrize(
    "wrong",
    [
        lambda W, X, v: _fvp(W, X, v, reduce="sum"),  # missing the mean over samples
        lambda W, X, v: _fvp(W, X, v, sign=-1.0),  # sign flipped (minus the Hessian)
        lambda W, X, v: _fvp(
            W, X, v, detach=False
        ),  # old probabilities not detached: 0
        lambda W, X, v: v,  # identity
        lambda W, X, v: _fvp(W, X, v).reshape(W.shape),  # not flattened
    ],
)
def test_wrong_fvp_answers_are_rejected(wrong):
    with pytest.raises(ExerciseFailure) as exc:
        check_fvp(wrong)
    assert "tolerance" in str(exc.value) or "shape" in str(exc.value)


def test_stub_is_reported():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseFailure, match="not implemented"):
        check_cg(stub)
    with pytest.raises(ExerciseFailure, match="not implemented"):
        check_fvp(stub)
