import numpy as np
import pytest

from companion import mdp as M


@pytest.fixture
def small_mdp() -> M.TabularMDP:
    return M.random_mdp(4, 3, gamma=0.9, seed=0)


@pytest.fixture
def small_policy(small_mdp) -> np.ndarray:
    return M.random_policy(small_mdp.n_states, small_mdp.n_actions, seed=1)
