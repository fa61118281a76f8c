"""The torch-harmonics SFNO family, in one import: checkpoint format, loader, data file, default files.

    th_model.py       StochasticSFNO: noise channels -> ensemble, as fme trains (imports torch)
    th_checkpoint.py  the ``specprobe.th-sfno`` format, plain state dict + sidecar, validation
    th_data.py        the ``specprobe.th-sfno-data`` held-out sample format
    th_target.py      THSFNOTarget, the ProbeTarget the engine sees
    swe.py            shallow-water trajectories from torch-harmonics' solver (training data)
"""

from __future__ import annotations

from .th_checkpoint import (
    DEFAULT_CHECKPOINT,
    DEFAULT_SAMPLE,
    FAMILY,
    FORMAT,
    FORMAT_VERSION,
    CheckpointSpec,
    build_model,
    default_checkpoint_path,
    default_sample_path,
    is_th_checkpoint,
    load_th_target,
    read_checkpoint,
    save_checkpoint,
)
from .th_data import DATA_FORMAT, DATA_FORMAT_VERSION, load_pairs, save_sample
from .th_target import THSFNOTarget

__all__ = [
    "DATA_FORMAT", "DATA_FORMAT_VERSION", "DEFAULT_CHECKPOINT", "DEFAULT_SAMPLE", "FAMILY", "FORMAT",
    "FORMAT_VERSION", "CheckpointSpec", "build_model", "default_checkpoint_path", "default_sample_path",
    "is_th_checkpoint", "load_pairs", "load_th_target", "read_checkpoint", "save_checkpoint", "save_sample",
    "THSFNOTarget",
]

