"""The ``specprobe.th-sfno`` format's names, bundled files and atomic writer: no torch, no imports of
the rest of the family, so every th module (and the CLI's default-checkpoint lookup) can use it."""

from __future__ import annotations

import os
import tempfile
from importlib import resources
from pathlib import Path

FORMAT = "specprobe.th-sfno"
FORMAT_VERSION = 1
FAMILY = "torch-harmonics-sfno"
SFNO_CLASS = "torch_harmonics.examples.models.SphericalFourierNeuralOperator"
SPECTRAL_LAYOUT = "(out, in, L) complex64 driscoll-healy"
GRIDS = ("equiangular", "legendre-gauss", "lobatto")


def _bundled(name: str) -> Path:
    return Path(str(resources.files("specprobe").joinpath("data", name)))


# Bundled models by name (docs/bundled_model.md): checkpoint file and its held-out sample in specprobe/data.
# "swe" is the default; "noisy" adds stochastic small-scale forcing, so its small scales cannot be predicted.
BUNDLED = {"swe": ("swe_sfno.pt", "swe_heldout.pt"), "noisy": ("swe_noisy_sfno.pt", "swe_noisy_heldout.pt")}
DEFAULT_BUNDLED = "swe"


def default_checkpoint_path() -> Path:
    """The bundled, really trained shallow-water SFNO (docs/bundled_model.md)."""
    return _bundled(BUNDLED[DEFAULT_BUNDLED][0])


def default_sample_path() -> Path:
    """The bundled held-out shallow-water trajectories the default checkpoint is probed on."""
    return _bundled(BUNDLED[DEFAULT_BUNDLED][1])


def bundled_paths(name: str) -> tuple[Path, Path]:
    """(checkpoint, held-out sample) of the bundled model ``name`` (KeyError for an unknown name)."""
    ckpt, sample = BUNDLED[name]
    return _bundled(ckpt), _bundled(sample)


def sample_path_for(checkpoint) -> Path:
    """The held-out sample a checkpoint is probed on by default: a bundled model's own, else the default one."""
    if checkpoint is not None:
        try:
            resolved = Path(checkpoint).resolve()
        except OSError:
            resolved = None
        for name in BUNDLED:
            ckpt, sample = bundled_paths(name)
            if resolved is not None and resolved == ckpt.resolve():
                return sample
    return default_sample_path()


DEFAULT_CHECKPOINT = default_checkpoint_path()
DEFAULT_SAMPLE = default_sample_path()


def is_th_checkpoint(obj) -> bool:
    """True for a loaded format dict (any version: an unknown version is refused later, by name)."""
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def atomic_torch_save(obj, path) -> None:
    """``torch.save`` to a temporary file in the same directory, then ``os.replace``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
