"""``import ipyparallel`` gives rayparallel, in a process that asks for it and nowhere else.

Ways to ask (none of them touches other programs, or the real ipyparallel if installed)::

    python -m rayparallel.ipyparallel script.py [args]      # a script, unchanged
    python -m rayparallel.ipyparallel -m module [args]      # a module, e.g. pytest
    %load_ext rayparallel.ipyparallel                       # IPython / a running notebook
    python -m rayparallel.ipyparallel --install-kernel      # a Jupyter kernel "ipyparallel on Ray"
    RAYPARALLEL_AS_IPYPARALLEL=1 python ...                 # after --install-env-hook, once

or from Python: ``rayparallel.ipyparallel.install()``. Then ``ipyparallel.Client is
rayparallel.Client`` and the submodules user code imports (``ipyparallel.error``,
``ipyparallel.client.view``, ...) resolve as :data:`ALIASES` says. A name rayparallel has no
equivalent for raises ImportError/AttributeError naming it; nothing is faked.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import json
import os
import runpy
import sys
import sysconfig
import tempfile
import types
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ALIASES", "install", "uninstall", "installed", "main", "install_kernelspec",
           "install_env_hook", "load_ipython_extension"]

#: ipyparallel module -> the rayparallel modules its names come from, in order. Any
#: attribute of the first one resolves; later ones contribute their public names (their
#: ``__all__``); ``"module:a,b"`` contributes only ``a`` and ``b``. Modules that do not exist
#: (yet) are skipped, so entries for work in progress start working once the module lands.
ALIASES: dict[str, tuple[str, ...]] = {
    "ipyparallel": ("rayparallel", "rayparallel.remotefunction", "rayparallel.error",
                    "rayparallel.loadbalanced", "rayparallel.dependency",
                    "rayparallel.cluster:Cluster,ClusterManager",
                    "rayparallel.joblibbackend", "rayparallel.hub:AsyncHubResult"),
    "ipyparallel.error": ("rayparallel.error",),
    "ipyparallel.util": ("rayparallel.remotefunction:interactive", "rayparallel.hub:utc"),
    "ipyparallel.serialize": ("rayparallel.serialize", "rayparallel.canning"),
    "ipyparallel.datapub": ("rayparallel.datapub",),
    "ipyparallel.client": (),
    "ipyparallel.client.client": ("rayparallel.client",),
    "ipyparallel.client.view": ("rayparallel.view", "rayparallel.loadbalanced",
                                "rayparallel.lazymap"),
    "ipyparallel.client.asyncresult": ("rayparallel.asyncresult", "rayparallel.mapresult",
                                       "rayparallel.hub:AsyncHubResult"),
    "ipyparallel.client.remotefunction": ("rayparallel.remotefunction",),
    "ipyparallel.client._joblib": ("rayparallel.loadbalanced",),
    "ipyparallel.controller": (),
    "ipyparallel.controller.dependency": ("rayparallel.dependency",),
    "ipyparallel.cluster": ("rayparallel.cluster",),
    # Ray starts the engines: no launcher classes; each name fails as missing.
    "ipyparallel.cluster.launcher": (),
}

ENV_VAR = "RAYPARALLEL_AS_IPYPARALLEL"
_PTH_NAME = "rayparallel-as-ipyparallel.pth"

#: ``placeholder(qualified_name)`` for names rayparallel lacks, or None to raise at once
#: (set by :func:`install`; the compatibility test runner uses it, users never need to)
_on_missing: Callable[[str], Any] | None = None


def _split(target: str) -> tuple[str, tuple[str, ...] | None]:
    module, _, names = target.partition(":")
    return module, tuple(names.split(",")) if names else None


def _load(module_name: str) -> types.ModuleType | None:
    """The module, or None if it does not exist (an entry for a module still to come)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            return None
        raise  # the module exists but something it imports is missing: say so


class AliasModule(types.ModuleType):
    """``ipyparallel.X``: looks names up in the rayparallel modules :data:`ALIASES` gives.

    Assigning to it (``ipyparallel.X.name = v``, ``mock.patch``) sets the name on this
    alias only; rayparallel's own modules are never changed by it.
    """

    def __init__(self, name: str):
        super().__init__(name, f"ipyparallel on Ray: names from {ALIASES[name] or 'none'}")
        if any(key.startswith(name + ".") for key in ALIASES):
            self.__path__ = []  # a package: ipyparallel.X.Y imports through our finder

    def __getattr__(self, attr: str) -> Any:
        name = object.__getattribute__(self, "__name__")
        child = f"{name}.{attr}"
        if child in ALIASES:
            try:
                return importlib.import_module(child)
            except ImportError as exc:
                raise AttributeError(str(exc)) from None
        if attr.startswith("__"):  # dunders a module lacks stay missing (copy, inspect)
            raise AttributeError(attr)
        looked = []
        for position, target in enumerate(ALIASES[name]):
            module_name, only = _split(target)
            looked.append(module_name)
            module = _load(module_name)
            if module is None or (only is not None and attr not in only):
                continue
            public = getattr(module, "__all__", None)
            if position == 0 or only is not None or public is None or attr in public:
                try:
                    return getattr(module, attr)
                except AttributeError:
                    continue
        if _on_missing is not None:
            return _on_missing(child)
        raise AttributeError(f"{child} has no rayparallel equivalent (looked in "
                             f"{', '.join(looked) or 'nothing'})")

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        for target in ALIASES[self.__name__]:
            module_name, only = _split(target)
            module = _load(module_name)
            if module is not None:
                names.update(only or getattr(module, "__all__", None) or dir(module))
        return sorted(names)


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of the names in :data:`ALIASES`; all other names pass through."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in ALIASES:
            return None
        targets = ALIASES[fullname]
        if targets and _on_missing is None and _load(_split(targets[0])[0]) is None:
            raise ModuleNotFoundError(f"No module named {fullname!r}: rayparallel has no "
                                      f"{_split(targets[0])[0]} (yet)", name=fullname)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=hasattr(
            AliasModule(fullname), "__path__"))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return AliasModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # an alias has no code of its own: names are looked up when asked for


_finder = _AliasFinder()


def installed() -> bool:
    """True if ``import ipyparallel`` gives rayparallel in this process."""
    return _finder in sys.meta_path


def install(on_missing: Callable[[str], Any] | None = None) -> None:
    """Make ``import ipyparallel`` (and its submodules in :data:`ALIASES`) give rayparallel
    in this process. Call it before anything imports ipyparallel.

    ``on_missing(name)`` gives the value of a name rayparallel lacks instead of raising (for
    test runners that want each test to fail on the names it uses, not the whole module).

    >>> import rayparallel.ipyparallel; rayparallel.ipyparallel.install()
    >>> import ipyparallel as ipp
    >>> ipp.Client
    <class 'rayparallel.client.Client'>
    """
    global _on_missing
    real = sys.modules.get("ipyparallel")
    if real is not None and not isinstance(real, AliasModule):
        raise RuntimeError("the real ipyparallel is already imported in this process; "
                           "install the alias before anything imports ipyparallel")
    _on_missing = on_missing
    if not installed():
        sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Undo :func:`install`: forget the alias modules; a later ``import ipyparallel``
    imports the real package (if installed)."""
    global _on_missing
    while _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    _on_missing = None
    for name in [n for n in sys.modules if n == "ipyparallel" or n.startswith("ipyparallel.")]:
        del sys.modules[name]


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext rayparallel.ipyparallel``: ``import ipyparallel`` gives rayparallel in
    this kernel/shell from now on."""
    install()


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext rayparallel.ipyparallel``."""
    uninstall()


def install_kernelspec(user: bool = True, prefix: str | None = None,
                       name: str = "rayparallel-ipyparallel") -> str:
    """Install a Jupyter kernel whose ``import ipyparallel`` gives rayparallel; returns
    where it went. ``user=True``: for this user; ``prefix``: under that environment prefix.

    Then pick "Python 3 (ipyparallel on Ray)" in Jupyter::

        install_kernelspec()
    """
    from jupyter_client.kernelspec import KernelSpecManager

    spec = {"argv": [sys.executable, "-m", "rayparallel.ipyparallel", "-m",
                     "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipyparallel on Ray)", "language": "python",
            "metadata": {"debugger": True}}
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "kernel.json"), "w", encoding="utf-8") as fh:
            json.dump(spec, fh, indent=1)
        return KernelSpecManager().install_kernel_spec(
            folder, name, user=user and prefix is None, prefix=prefix)


def install_env_hook(site_dir: str | None = None) -> str:
    """Write a ``.pth`` file into this environment's site-packages (or ``site_dir``) that
    installs the alias at interpreter start-up *only* when ``RAYPARALLEL_AS_IPYPARALLEL=1``
    is set; every other process is left alone (the check reads one environment variable).
    Returns the file's path. Remove the file to undo it."""
    folder = site_dir or sysconfig.get_paths()["purelib"]
    path = os.path.join(folder, _PTH_NAME)
    # .pth files run lines that start with "import"; rayparallel is imported only if asked
    line = (f"import os; os.environ.get({ENV_VAR!r}, '0') not in ('', '0') and "
            "__import__('rayparallel.ipyparallel').ipyparallel.install()\n")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(line)
    return path


_USAGE = """usage: python -m rayparallel.ipyparallel script.py [args ...]
       python -m rayparallel.ipyparallel -m module [args ...]
       python -m rayparallel.ipyparallel --install-kernel [--sys-prefix]
       python -m rayparallel.ipyparallel --install-env-hook
Runs the script or module with `import ipyparallel` giving rayparallel."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m rayparallel.ipyparallel``; see :data:`_USAGE`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE)
        return 0 if args else 2
    if args[0] == "--install-kernel":
        print(install_kernelspec(user="--sys-prefix" not in args,
                                 prefix=sys.prefix if "--sys-prefix" in args else None))
        return 0
    if args[0] == "--install-env-hook":
        print(install_env_hook())
        return 0
    install()
    if args[0] == "-m":
        if len(args) < 2:
            print(_USAGE, file=sys.stderr)
            return 2
        sys.argv = [args[1], *args[2:]]  # runpy puts the module's path in argv[0]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))  # as `python script`
        runpy.run_path(args[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    # Run the one imported as rayparallel.ipyparallel, so `install()` state is shared with
    # code that imports this module by name (e.g. %load_ext inside the script).
    from rayparallel.ipyparallel import main as _main

    sys.exit(_main())
