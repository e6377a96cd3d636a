"""Benchmarks: rayparallel against raw Ray and ipyparallel (``python -m benchmarks``)."""
