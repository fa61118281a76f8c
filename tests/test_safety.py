"""Untrusted checkpoints: never execute pickled code; every malformed file is a one-line error."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from specprobe.errors import CheckpointError
from specprobe.models.safe_load import load_checkpoint_file


class _Payload:
    """Unpickling this would create the file named in ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _evil_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": _Payload(str(marker))}, path)
    assert not marker.exists()
    return path, marker


def test_crafted_pickle_is_refused_and_never_runs(tmp_path):
    path, marker = _evil_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"untrusted global .*--trust-checkpoint"):
        load_checkpoint_file(path)
    assert not marker.exists()


def test_crafted_pickle_through_the_cli(tmp_path):
    path, marker = _evil_checkpoint(tmp_path)
    for cmd in (["info", str(path)], ["grad-by-l", str(path), "--out", str(tmp_path / "o")]):
        r = subprocess.run([sys.executable, "-m", "specprobe", *cmd], capture_output=True, text=True)
        assert r.returncode == 2
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        assert "--trust-checkpoint" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()


def test_trust_checkpoint_does_unpickle(tmp_path):
    path, marker = _evil_checkpoint(tmp_path)
    with pytest.warns(UserWarning, match="trust-checkpoint"):
        load_checkpoint_file(path, trust=True)
    assert marker.exists()  # the flag really means "run its code"


def test_plain_pickle_is_refused(tmp_path):
    path, marker = tmp_path / "plain.pkl", tmp_path / "pwned2"
    path.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(CheckpointError):
        load_checkpoint_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("make,match", [
    (lambda d: d / "missing.pt", "no such file"),
    (lambda d: d, "is a directory"),
    (lambda d: _write(d / "empty.pt", b""), "empty file"),
    (lambda d: _write(d / "img.png", b"\x89PNG\r\n\x1a\n" + os.urandom(64)), "PNG"),
    (lambda d: _write(d / "r.json", b'{"schema": "specprobe.grad-by-l/1"}'), "JSON"),
    (lambda d: _write(d / "rand.pt", os.urandom(4096)), "corrupt|not a readable"),
])
def test_bad_files(tmp_path, make, match):
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint_file(make(tmp_path))


def test_truncated_checkpoint(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.randn(64, 64)}, good)
    data = good.read_bytes()
    half = _write(tmp_path / "half.pt", data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint_file(half)


def _write(path, data):
    path.write_bytes(data)
    return path
