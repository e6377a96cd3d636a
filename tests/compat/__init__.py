"""ipyparallel's own test suite run against rayparallel (see conftest.py)."""
