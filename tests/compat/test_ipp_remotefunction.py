"""ipyparallel's own ``tests/test_remotefunction.py``, the installed file, run against rayparallel
(see conftest.py; expected failures and their reasons: expected_failures.py)."""

from ipyparallel.tests.test_remotefunction import *  # noqa: F403
