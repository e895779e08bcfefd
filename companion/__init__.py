"""companion: the algorithms of *Modern Reinforcement Learning, Executed*.

One module per topic; every chapter of the book imports from here, and every function
states the equation it implements and the chapter that derives it.

* :mod:`companion.mdp` - tabular MDPs, exact value functions, policy and value iteration
* :mod:`companion.td` - temporal-difference learning
* :mod:`companion.exercises` - checkers for the book's coding exercises
* :mod:`companion.notebooks` - generates plain and student ``.ipynb`` copies of the chapters
"""

__version__ = "0.1.0"
