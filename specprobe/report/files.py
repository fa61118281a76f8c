"""Writing results: every file goes to a temporary file in the same directory, then os.replace.

An interrupted run (SIGINT, SIGTERM, even SIGKILL mid-write) leaves the previous file or the new
one, never a partial one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..errors import SpecprobeError


def prepare_out_dir(path) -> Path:
    """Create the output directory and prove it is writable before any work is done."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SpecprobeError(f"--out {out}: cannot create directory ({e.strerror or e})") from None
    if not out.is_dir():
        raise SpecprobeError(f"--out {out}: exists and is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".specprobe-write-test-"):
            pass
    except OSError as e:
        raise SpecprobeError(f"--out {out}: not writable ({e.strerror or e})") from None
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_with(path, write) -> Path:
    """For writers that want a file name (netCDF): ``write(tmp)`` fills a temporary file beside
    ``path``, which is then synced and renamed over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    return atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, allow_nan=False) + "\n")


def read_result_json(path) -> dict:
    """Read a result file; a missing, broken or foreign file is a one-line SpecprobeError."""
    p = Path(path)
    if not p.is_file():
        raise SpecprobeError(f"{p}: no such result file")
    try:
        obj = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SpecprobeError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(obj, dict) or "schema" not in obj:
        raise SpecprobeError(f"{p}: not a specprobe result (no 'schema' key)")
    return obj
