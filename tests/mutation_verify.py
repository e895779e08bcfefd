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

``NAMES_FILE`` has one mutant name per line (``mutmut results`` prints them). A line
``none`` runs the tests on the unmutated source: it must survive, which shows that the
mutants run before it left no state behind that fails the tests (put one every few dozen
names). A mutant still running after ``VERIFY_TIMEOUT`` seconds (default 300) is stopped
and counted as killed, as mutmut counts a timeout.

With ``VERIFY_BY_COVERAGE=1`` each mutant runs only the tests of the given files that
mutmut's stats run (``mutants/mutmut-stats.json``) recorded as calling the mutated
function, as mutmut itself does, plus every test of the files listed (comma-separated)
in ``VERIFY_ALWAYS`` (tests written after the stats run). A pytest run that ends in an
error other than a failing test (say, a test id that no longer exists) is reported and
not counted as a kill. The stats only record the tests that called a function while its
result was not cached yet, so for functions whose result is cached (names listed in
``VERIFY_FULL_FOR``, comma-separated substrings of mutant names) every test of the given
files runs.

``VERIFY_RESET`` names module globals (``module.NAME``, comma-separated) set to ``None``
before each mutant: caches that would otherwise keep what the first mutant built (such
as ``companion.trpo._POLICY_CLASS``, the policy class built on first use). Modules are
imported once for all mutants, so any other state a mutant leaves behind can leak into
the next; the ``none`` control runs catch the leaks that fail the tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    names = [line.strip() for line in Path(argv[0]).read_text().splitlines() if line.strip()]
    files = argv[1:]
    root = Path(__file__).resolve().parents[1] / "mutants"
    os.chdir(root)
    sys.path.insert(0, str(root))
    import pytest

    timeout = int(os.environ.get("VERIFY_TIMEOUT", "300"))
    always = [f for f in os.environ.get("VERIFY_ALWAYS", "").split(",") if f]
    covering = None
    if os.environ.get("VERIFY_BY_COVERAGE"):
        stats = json.loads((root / "mutmut-stats.json").read_text())["tests_by_mangled_function_name"]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            pytest.main(["--co", "-q", "-p", "no:cacheprovider", *files])
        existing = {line.strip() for line in buf.getvalue().splitlines() if "::" in line}

        def covering(name: str) -> list[str]:
            tests = stats.get(name.rsplit("__mutmut_", 1)[0], ())
            return sorted(t for t in tests if t in existing)

    def stop(signum, frame):
        raise TimeoutError(f"mutant ran longer than {timeout} s")

    signal.signal(signal.SIGALRM, stop)
    import importlib

    full_for = [f for f in os.environ.get("VERIFY_FULL_FOR", "").split(",") if f]
    resets = [r.rsplit(".", 1) for r in os.environ.get("VERIFY_RESET", "").split(",") if r]
    survivors = []
    for i, name in enumerate(names):
        os.environ["MUTANT_UNDER_TEST"] = name
        for module, attr in resets:
            setattr(importlib.import_module(module), attr, None)
        full = covering is None or name == "none" or any(f in name for f in full_for)
        args = [*always, *files] if full else [*always, *covering(name)]
        if not args:
            survivors.append(name)
            print(name, flush=True)
            print(f"# no covering test: {name}", file=sys.stderr, flush=True)
            continue
        buf = io.StringIO()
        signal.alarm(timeout)
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                rc = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-k", os.environ.get("VERIFY_K", ""),
                                  *args])
            if "mutant ran longer than" in buf.getvalue():
                print(f"# timeout: {name}", file=sys.stderr, flush=True)
        except TimeoutError:
            rc = 1
            print(f"# timeout: {name}", file=sys.stderr, flush=True)
        finally:
            signal.alarm(0)
        if rc not in (0, 1):  # 2-5: interrupted, internal or usage error, nothing collected
            print(f"# pytest error (exit code {int(rc)}): {name}", file=sys.stderr, flush=True)
            continue
        if name == "none" and rc != 0:
            print(f"# the unmutated source FAILED after {i} names: later verdicts are not valid",
                  file=sys.stderr, flush=True)
        if rc == 1:
            print(f"# killed: {name}", file=sys.stderr, flush=True)
        if rc == 0:
            survivors.append(name)
            print(name, flush=True)  # as found, so that a stopped run keeps its results
        print(f"# {len(survivors)} of {i + 1} survive so far", file=sys.stderr, flush=True)
    print(f"# {len(survivors)} of {len(names)} survive", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
