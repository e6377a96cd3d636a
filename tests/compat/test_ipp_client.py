"""ipyparallel's own ``tests/test_client.py``, the installed file, run against rayparallel
(see conftest.py; expected failures and their reasons: expected_failures.py)."""

from ipyparallel.tests.test_client import *  # noqa: F403
