"""Waiting for something another process or thread does, with a deadline, in one place.

>>> wait_until(lambda: True, what="nothing")
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

#: seconds between looks: short next to what tests wait for, cheap for the machine
INTERVAL = 0.01


def wait_until(condition: Callable[[], object], timeout: float = 60, *,
               what: str = "the condition") -> None:
    """Return once ``condition()`` is true; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(INTERVAL)


def wait_for_file(path: str, timeout: float = 30) -> None:
    """Wait until ``path`` exists (engines and subprocesses signal progress with files)."""
    wait_until(lambda: os.path.exists(path), timeout, what=f"{path} to appear")


def wait_for_entries(folder: str, count: int, timeout: float = 120) -> None:
    """Wait until ``folder`` holds at least ``count`` entries."""
    wait_until(lambda: len(os.listdir(folder)) >= count, timeout,
               what=f"{count} entries in {folder}")
