"""ipyparallel's own ``tests/test_executor.py``, the installed file, run against rayparallel
(see conftest.py; expected failures and their reasons: expected_failures.py)."""

from ipyparallel.tests.test_executor import *  # noqa: F403
