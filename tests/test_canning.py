"""``can``/``uncan`` (rayparallel/canning.py), as ``ipyparallel.serialize`` offers them."""

from __future__ import annotations

import pickle
import threading

import pytest

import rayparallel
from rayparallel import error
from rayparallel.canning import CannedFunction, can, uncan


@rayparallel.interactive  # as if defined in a notebook: it takes the namespace it is given
def uses_base64(arg):
    return base64.b64encode(arg)  # noqa: F821 - imported by @require into the namespace


def test_uncan_gives_functions_the_namespace_as_globals():
    ns = {"__builtins__": __builtins__}
    encode = uncan(can(rayparallel.require("base64")(uses_base64)), ns)
    assert encode(b"foo") == b"Zm9v" and "base64" in ns
    get = uncan(can(lambda: missing), {})  # noqa: F821
    with pytest.raises(NameError, match="missing"):
        get()


def test_containers_are_canned_one_level_deep_and_survive_pickling():
    canned = can({"f": len, "g": uses_base64, "n": 1, "seq": (abs, 2)})
    assert isinstance(canned["g"], CannedFunction) and canned["n"] == 1
    back = uncan(pickle.loads(pickle.dumps(canned)), {"base64": __import__("base64")})
    assert back["g"](b"a") == b"YQ==" and back["n"] == 1
    assert back["seq"][1] == 2 and back["f"]("ab") == 2


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="namespace must be a dict, not list"):
        uncan(can(uses_base64), [])
    lock = threading.Lock()
    with pytest.raises(error.SerializationError, match="the function"):
        can(lambda: lock)
