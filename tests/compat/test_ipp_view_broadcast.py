"""ipyparallel's own ``tests/test_view_broadcast.py``, the installed file, run against rayparallel
(see conftest.py; expected failures and their reasons: expected_failures.py)."""

from ipyparallel.tests.test_view_broadcast import *  # noqa: F403
