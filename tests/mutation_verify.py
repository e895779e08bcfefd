"""Run chosen tests against named mutmut mutants, without touching mutmut's results.

mutmut runs, for each mutant, every selected test that covers the mutated function. For
the functions that almost every test uses (``TabularMDP.__post_init__``,
``value_function``, ...) that is most of the suite per mutant, hours in all; and a test
file written after a run only counts once mutmut re-runs the mutants. This script runs
the given test files (a subset of the selection) against each named mutant, in the
``mutants/`` tree mutmut generated, by setting ``MUTANT_UNDER_TEST`` as mutmut does, and
prints the mutants that every given test lets through. A mutant it reports as killed is
killed (a test of the selection fails on it); one it reports as surviving may still be
killed by a test it did not run. See tests/MUTATION.md.

Usage (from the repository root, after ``mutmut run`` generated ``mutants/``)::

    cp tests/test_mutation_mdp.py mutants/tests/      # test files newer than mutants/
    PYTHONPATH=mutants OMP_NUM_THREADS=1 python tests/mutation_verify.py NAMES_FILE \\
        tests/test_mdp.py tests/test_mutation_mdp.py   # -k expression in VERIFY_K

``NAMES_FILE`` has one mutant name per line (``mutmut results`` prints them).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    names = [line.strip() for line in Path(argv[0]).read_text().splitlines() if line.strip()]
    files = argv[1:]
    root = Path(__file__).resolve().parents[1] / "mutants"
    os.chdir(root)
    sys.path.insert(0, str(root))
    import pytest

    survivors = []
    for i, name in enumerate(names):
        os.environ["MUTANT_UNDER_TEST"] = name
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            rc = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-k", os.environ.get("VERIFY_K", ""),
                              *files])
        if rc == 0:
            survivors.append(name)
            print(name, flush=True)  # as found, so that a stopped run keeps its results
        print(f"# {len(survivors)} of {i + 1} survive so far", file=sys.stderr, flush=True)
    print(f"# {len(survivors)} of {len(names)} survive", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
