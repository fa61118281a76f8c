"""Read a checkpoint file without ever executing pickled code.

Every load is ``torch.load(weights_only=True)`` with an explicit allow-list; a checkpoint needing
anything else is refused, naming the global, unless the user passes ``--trust-checkpoint``.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from collections import namedtuple
from pathlib import Path

from ..errors import CheckpointError

# fme pickles this one NamedTuple in its checkpoints (dataset_info.variable_metadata).
_FME_VARIABLE_METADATA = "fme.core.dataset.data_typing.VariableMetadata"


def _allow_list():
    """Classes a checkpoint may reference: fme's VariableMetadata (fme's own if imported, else a stand-in).

    torch's weights_only unpickler matches allowed globals by ``module.qualname``, so a stand-in
    NamedTuple carrying fme's module path resolves the name without importing (or faking) fme.
    """
    import sys

    module_name, _, cls_name = _FME_VARIABLE_METADATA.rpartition(".")
    module = sys.modules.get(module_name)
    cls = getattr(module, cls_name, None) if module is not None else None
    if cls is None:
        cls = _variable_metadata_standin()
    return [cls]


_STANDIN = None


def _variable_metadata_standin():
    global _STANDIN
    if _STANDIN is None:
        module_name, _, cls_name = _FME_VARIABLE_METADATA.rpartition(".")
        _STANDIN = namedtuple(cls_name, ["units", "long_name"])
        _STANDIN.__module__ = module_name
    return _STANDIN


def check_readable_file(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a directory, expected a checkpoint file")
    if not os.access(p, os.R_OK):
        raise CheckpointError(f"{p}: not readable (permission denied)")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: empty file")
    return p


def _sniff(p: Path) -> None:
    """Name the obvious non-checkpoints before torch tries to unpickle them."""
    with open(p, "rb") as f:
        head = f.read(16)
    if head.startswith(b"\x89PNG"):
        raise CheckpointError(f"{p}: is a PNG image, not a checkpoint")
    if head.lstrip()[:1] in (b"{", b"["):
        raise CheckpointError(f"{p}: is a JSON/text file, not a checkpoint (result files go to `specprobe compare`)")
    if head.startswith(b"PK"):
        try:
            ok = zipfile.is_zipfile(p)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            ok = False
        if not ok:
            raise CheckpointError(f"{p}: truncated or corrupt checkpoint (broken zip archive)")


def load_checkpoint_file(path, *, trust: bool = False, map_location="cpu"):
    """``torch.load`` a checkpoint safely; every failure becomes a one-line :class:`CheckpointError`."""
    import pickle

    import torch

    p = check_readable_file(path)
    _sniff(p)
    if trust:
        warnings.warn(f"{p}: --trust-checkpoint: unpickling with full code execution", stacklevel=2)
        try:
            return torch.load(p, map_location=map_location, weights_only=False)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
            raise CheckpointError(f"{p}: cannot load checkpoint: {_one_line(e)}") from e
    try:
        with torch.serialization.safe_globals(_allow_list()):
            return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg)
        if m:
            raise CheckpointError(
                f"{p}: refused: the checkpoint needs the untrusted global {m.group(1)}; "
                "pass --trust-checkpoint only if you trust its source"
            ) from e
        reason = re.search(r"WeightsUnpickler error:\s*(.+?)\n", msg)
        detail = reason.group(1).strip() if reason else _one_line(e)
        raise CheckpointError(f"{p}: not a readable checkpoint (corrupt or not a torch file: {detail})") from e
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError,
            AttributeError, UnicodeDecodeError, OverflowError, MemoryError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{p}: truncated or corrupt checkpoint: {_one_line(e)}") from e


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return (text[:200] + "...") if len(text) > 200 else (text or type(e).__name__)
