"""companion: the algorithms of *Modern Reinforcement Learning, Executed*.

One module per topic; every chapter of the book imports from here, and every function
states the equation it implements and the chapter that derives it.

* :mod:`companion.mdp` - tabular MDPs, exact value functions, policy and value iteration (Ch. 1)
* :mod:`companion.td` - temporal-difference learning (Ch. 1)
* :mod:`companion.pg` - policy gradients: reward-to-go, softmax policies, REINFORCE (Ch. 2)
* :mod:`companion.cpi` - policy advantage, surrogate, Kakade-Langford bound, CPI (Ch. 3)
* :mod:`companion.trpo` - divergences, TRPO bounds, conjugate gradient, Fisher-vector products (Ch. 4)
* :mod:`companion.ppo` - the clipped surrogate and a PPO learner (Ch. 5)
* :mod:`companion.gae` - generalized advantage estimation (Ch. 6)
* :mod:`companion.grpo` - group advantages, the k3 KL estimator and its gradient, the GRPO losses (Ch. 7)
* :mod:`companion.digit_sum` - the toy verifiable-reward task and the seed-batched GRPO/PPO/REINFORCE experiment (Ch. 7)
* :mod:`companion.rollout`, :mod:`companion.nets` - vector-environment rollouts and MLPs for the learners
* :mod:`companion.stats` - bootstrap intervals over seeds for every stochastic claim
* :mod:`companion.exercises` - checkers for the book's coding exercises, one module per chapter
* :mod:`companion.notebooks` - generates plain and student ``.ipynb`` copies of the chapters
"""

__version__ = "0.1.0"
