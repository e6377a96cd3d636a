"""ipyparallel's own ``tests/test_magics.py``, the installed file, run against rayparallel
(see conftest.py; expected failures and their reasons: expected_failures.py)."""

from ipyparallel.tests.test_magics import *  # noqa: F403
