"""The Chapter 5 exercise checkers accept right answers and reject the likely wrong ones."""

import pytest
import torch

from companion.exercises import ExerciseFailure, check_approx_kl, check_clipped_surrogate


def right_surrogate(r, A, eps):
    return torch.minimum(r * A, torch.clamp(r, 1 - eps, 1 + eps) * A)


def test_clipped_surrogate_accepts_right_answers():
    assert check_clipped_surrogate(right_surrogate)
    # float32 arithmetic passes the relative tolerance
    assert check_clipped_surrogate(lambda r, A, e: right_surrogate(r.float(), A.float(), e))
    # an equivalent form: pessimistic min written through where
    assert check_clipped_surrogate(
        lambda r, A, e: torch.where(A >= 0, torch.minimum(r, torch.tensor(1 + e, dtype=r.dtype)) * A,
                                    torch.maximum(r, torch.tensor(1 - e, dtype=r.dtype)) * A))


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (lambda r, A, e: torch.minimum(r * A, torch.clamp(r * A, 1 - e, 1 + e)), "value is off"),
        (lambda r, A, e: torch.maximum(r * A, torch.clamp(r, 1 - e, 1 + e) * A), "value is off"),
        (lambda r, A, e: torch.clamp(r, 1 - e, 1 + e) * A, "value is off"),
        (lambda r, A, e: r * A, "value is off"),
        # clipped ratio detached: right values, but inside the interval half the gradient is lost
        (lambda r, A, e: torch.minimum(r * A, torch.clamp(r, 1 - e, 1 + e).detach() * A), "gradient"),
        (lambda r, A, e: (torch.minimum(r * A, torch.clamp(r, 1 - e, 1 + e) * A)).detach(), "autograd"),
        (lambda r, A, e: torch.minimum(r * A, torch.clamp(r, 1 - 2 * e, 1 + 2 * e) * A), "value is off"),
        # eps hard-coded to 0.2: right at eps = 0.2, wrong at eps = 0.1
        (lambda r, A, e: torch.minimum(r * A, torch.clamp(r, 0.8, 1.2) * A), "eps=0.1"),
    ],
)
def test_clipped_surrogate_rejects_wrong_answers(wrong, fragment):
    with pytest.raises(ExerciseFailure, match=fragment):
        check_clipped_surrogate(wrong)


def test_clipped_surrogate_messages_do_not_reveal_the_reference():
    wrong = lambda r, A, e: torch.minimum(r * A, torch.clamp(r * A, 1 - e, 1 + e))  # noqa: E731
    with pytest.raises(ExerciseFailure) as info:
        check_clipped_surrogate(wrong)
    msg = str(info.value)
    assert "clamp" not in msg and "min(" not in msg and "expected" not in msg


def right_kl(new, old):
    log_r = new - old
    return ((log_r.exp() - 1) - log_r).mean()


def test_approx_kl_accepts_right_answers():
    assert check_approx_kl(right_kl)
    assert check_approx_kl(lambda n, o: float(right_kl(n, o)))
    assert check_approx_kl(lambda n, o: right_kl(n.float(), o.float()))


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (lambda n, o: (o - n).mean(), "naive estimate"),  # mean(-log r)
        (lambda n, o: ((n - o).exp() - 1 - (n - o)).sum(), "sum over the batch"),
        (lambda n, o: ((o - n).exp() - 1 - (o - n)).mean(), "off by"),  # ratio upside down
        (lambda n, o: (0.5 * (n - o) ** 2).mean(), "off by"),  # k2 estimator
        (lambda n, o: (n - o).mean(), "off by"),
    ],
)
def test_approx_kl_rejects_wrong_answers(wrong, fragment):
    with pytest.raises(ExerciseFailure, match=fragment):
        check_approx_kl(wrong)


def test_approx_kl_messages_do_not_reveal_the_reference():
    with pytest.raises(ExerciseFailure) as info:
        check_approx_kl(lambda n, o: (o - n).mean())
    msg = str(info.value)
    assert "r - 1" not in msg and "exp" not in msg


@pytest.mark.parametrize("checker", [check_clipped_surrogate, check_approx_kl])
def test_stubs_fail_with_a_not_implemented_message(checker):
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseFailure, match="not implemented yet"):
        checker(stub)
