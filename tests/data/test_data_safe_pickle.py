"""The restricted unpickler: numpy arrays and plain containers in, code execution out."""

import io
import os
import pickle

import numpy as np
import pytest

from initlab.data.safe_pickle import safe_unpickle
from initlab.errors import InitlabError


class _RunsCommand:
    """Unpickling this calls os.system(command): the classic malicious pickle."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_arrays_and_containers_load(protocol) -> None:
    payload = {
        b"data": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "x": np.linspace(0, 1, 5, dtype=np.float32),
        "labels": [1, 2, 3],
        "nested": ((np.zeros((2, 2), dtype=np.int64), None), "text", 2.5),
    }
    back = safe_unpickle(io.BytesIO(pickle.dumps(payload, protocol=protocol)), what="test")
    assert np.array_equal(back[b"data"], payload[b"data"]) and back[b"data"].dtype == np.uint8
    assert np.array_equal(back["x"], payload["x"]) and back["x"].dtype == np.float32
    assert back["labels"] == [1, 2, 3] and back["nested"][1:] == ("text", 2.5)


def test_os_system_pickle_is_refused_and_nothing_runs(tmp_path) -> None:
    marker = tmp_path / "pwned"
    blob = pickle.dumps({"data": np.zeros(3), "evil": _RunsCommand(f"touch {marker}")}, protocol=2)
    with pytest.raises(InitlabError, match=r"refusing to unpickle (posix|nt|os)\.system") as err:
        safe_unpickle(io.BytesIO(blob), what="evil.pkl")
    assert "evil.pkl" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "blob",
    [
        pickle.dumps(_CallsEval(), protocol=4),
        # a global from an allowed module that is not itself allowed
        b"\x80\x02cnumpy\nload\nq\x00.",
        b"\x80\x02cbuiltins\ngetattr\nq\x00.",
        # _codecs.encode is allowed for latin-1 only
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.",
    ],
)
def test_other_globals_are_refused(blob) -> None:
    with pytest.raises(InitlabError, match="refusing"):
        safe_unpickle(io.BytesIO(blob), what="x.pkl")


def test_garbage_and_persistent_ids_give_one_line_errors() -> None:
    with pytest.raises(InitlabError, match="not a valid array pickle") as err:
        safe_unpickle(io.BytesIO(b"\x80\x02]q\x00(K\x01"), what="cut.pkl")  # truncated
    assert "\n" not in str(err.value)
    with pytest.raises(InitlabError, match="not a valid array pickle"):
        safe_unpickle(io.BytesIO(b"\x80\x02X\x01\x00\x00\x00aQ."), what="persid.pkl")
