"""ipyparallel's own ``tests/test_asyncresult.py``, the installed file, run against rayparallel
(see conftest.py; expected failures and their reasons: expected_failures.py)."""

from ipyparallel.tests.test_asyncresult import *  # noqa: F403
