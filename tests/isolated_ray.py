"""A Ray of a test's own, in its own temp dir (``RAY_TMPDIR``), so it is invisible to the
test session's Ray and to anything else on the machine, and can be stopped by killing just
its processes (``ray stop`` would stop every Ray on the machine)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap

import psutil


class IsolatedRay:
    """Environment for commands that use a Ray of their own, and the means to stop it."""

    def __init__(self, token: bool = False):
        # Short: Ray's socket paths under it must fit in 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="rp")
        # rayparallel remembers the heads it starts in RAYPARALLEL_STATE_DIR: this Ray's own
        self.env = {**os.environ, "RAY_TMPDIR": self.dir,
                    "RAYPARALLEL_STATE_DIR": os.path.join(self.dir, "state")}
        self.env.pop("RAY_ADDRESS", None)
        if token:  # a token of this cluster's own, in the environment, not in ~/.ray
            self.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(command, capture_output=True, text=True, env=self.env,
                              timeout=180)
        if check and done.returncode != 0:
            raise AssertionError(f"{command} failed ({done.returncode}):\n{done.stdout}\n"
                                 f"{done.stderr}")
        return done

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "rayparallel", *args, check=check)

    def ray(self, *args: str) -> subprocess.CompletedProcess:
        """The ``ray`` command of this interpreter's Ray."""
        return self.run(sys.executable, "-m", "ray.scripts.scripts", *args)

    def python(self, code: str) -> str:
        return self.run(sys.executable, "-c", textwrap.dedent(code)).stdout

    def processes(self) -> list[psutil.Process]:
        """This Ray's processes: those that name its dir, and those started with it in their
        environment (agents and servers that renamed themselves)."""
        me, found = os.getpid(), []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if proc.pid == me:
                    continue
                named = any(self.dir in part for part in proc.info["cmdline"] or ())
                if named or proc.environ().get("RAY_TMPDIR") == self.dir:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return found

    def stop(self) -> None:
        """Kill this Ray's processes (see :meth:`processes`)."""
        for proc in self.processes():
            try:
                proc.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
