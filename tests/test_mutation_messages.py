"""Every error message of mdp and td starts with the argument it is about (tests/MUTATION.md).

The tables of bad calls in ``test_mdp.py`` and ``test_td.py`` match their message anywhere
in the text, so a mutant that wraps the message (``"XX" + message + "XX"``) or replaces
the argument's name survives them; here the same calls must give a message that *starts*
with the expected text.
"""

from __future__ import annotations

import pytest
import test_mdp
import test_td

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
