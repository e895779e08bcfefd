"""Every error message of mdp and td starts with the argument it is about (tests/MUTATION.md).

The tables of bad calls in ``test_mdp.py`` and ``test_td.py`` match their message anywhere
in the text, so a mutant that wraps the message (``"XX" + message + "XX"``) or replaces
the argument's name survives them; here the same calls must give a message that *starts*
with the expected text.
"""

from __future__ import annotations

import re

import pytest
import test_cpi
import test_grpo
import test_pg
import test_mdp
import test_td

from companion import grpo
from companion import mdp as M

# entries whose message names the argument first and then the expected text
_NAMED_FIRST = {"visitation pi negative": "pi has a "}


@pytest.mark.parametrize(
    "name, call, message",
    test_mdp.BAD_INPUTS,
    ids=[n for n, _, _ in test_mdp.BAD_INPUTS],
)
def test_mdp_messages_start_with_the_argument(name, call, message):
    with pytest.raises(ValueError) as info:
        call(M.random_mdp(3, 2, gamma=0.9, seed=0))
    text = str(info.value)
    assert text.startswith(_NAMED_FIRST.get(name, message)), text
    assert message in text


@pytest.mark.parametrize(
    "name, call, message",
    test_td.BAD_TD_INPUTS,
    ids=[n for n, _, _ in test_td.BAD_TD_INPUTS],
)
def test_td_messages_start_with_the_argument(name, call, message, small_mdp):
    with pytest.raises(ValueError) as info:
        call(small_mdp)
    text = str(info.value)
    assert text.startswith(message), text


# ---------------------------------------------------------------- pg, cpi and grpo: the same property
def _cases(test_function):
    (mark,) = [m for m in test_function.pytestmark if m.name == "parametrize"]
    return [getattr(p, "values", p) for p in mark.args[1]]


# pg messages that name the argument before the matched text
_PG_NAMED_FIRST = {
    "shape": "rewards must have shape",
    "one more entry": "states must have one more entry",
}


@pytest.mark.parametrize(
    "call, match", _cases(test_pg.test_public_functions_refuse_bad_input)
)
def test_pg_messages_start_with_the_argument(call, match):
    with pytest.raises(ValueError) as info:
        call()
    text = str(info.value)
    assert re.match(_PG_NAMED_FIRST.get(match, match), text), text


@pytest.mark.parametrize("call, match", _cases(test_cpi.test_bad_input_refused))
def test_cpi_messages_start_with_the_argument(call, match):
    with pytest.raises(ValueError) as info:
        call()
    assert re.match(match, str(info.value)), str(info.value)


_GRPO_ARGS = r"^(logp|logp_old|logp_ref|advantages|mask|beta|clip_eps|loss_type|max_completion_length|group_size|rewards|eps|scale)\b"


@pytest.mark.parametrize(
    "kwargs, match", _cases(test_grpo.test_grpo_loss_refuses_bad_input)
)
def test_grpo_loss_messages_start_with_the_argument(kwargs, match):
    args = {
        "logp": test_grpo._Z,
        "logp_old": test_grpo._Z,
        "logp_ref": test_grpo._Z,
        "advantages": test_grpo._A,
        "mask": test_grpo._M,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as info:
        grpo.grpo_loss(**args)
    assert re.match(_GRPO_ARGS, str(info.value)), str(info.value)


@pytest.mark.parametrize(
    "rewards, kwargs, match", _cases(test_grpo.test_group_advantages_refuses_bad_input)
)
def test_group_advantages_messages_start_with_the_argument(rewards, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        grpo.group_advantages(rewards, **kwargs)
    assert re.match(_GRPO_ARGS, str(info.value)), str(info.value)
