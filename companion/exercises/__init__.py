"""Checkers for the book's coding exercises.

Each ``check_*`` function takes the reader's function (or value), runs it on test cases
that the reader does not see, compares with the companion's reference implementation
and either

* prints one sentence saying what is right and returns ``True``, or
* raises :class:`ExerciseFailure` (an ``AssertionError``) whose message says, in one
  sentence, what is wrong (which entry, by how much) without giving the solution away.

Because a failure raises, an executed notebook (the book build, nbval) fails when a
solution does not pass its checker.

The checkers live in one module per chapter (``ch1_foundations`` ... ``ch7_grpo``); the
shared comparison helpers are in ``_common``. Import them from here.
"""

from __future__ import annotations

from companion.exercises._common import ExerciseFailure
from companion.exercises.ch1_foundations import (
    check_expected_td_residual,
    check_policy_evaluation,
    check_v_from_q,
)
from companion.exercises.ch2_policy_gradient import (
    check_action_baseline_estimator,
    check_gaussian_score,
    check_reward_to_go,
)
from companion.exercises.ch3_cpi import (
    check_cpi_step_size,
    check_performance_difference,
    check_surrogate,
)
from companion.exercises.ch4_trpo import (
    check_conjugate_gradient,
    check_fisher_vector_product,
)
from companion.exercises.ch5_ppo import check_approx_kl, check_clipped_surrogate
from companion.exercises.ch6_gae import (
    check_k_step_advantage,
    check_monte_carlo_advantage,
)
from companion.exercises.ch7_grpo import (
    check_group_advantages,
    check_k3_values,
)

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
    "check_guaranteed_gain",
    "check_conjugate_gradient",
    "check_fisher_vector_product",
    "check_clipped_surrogate",
    "check_approx_kl",
    "check_group_advantages",
    "check_k3_values",
]
