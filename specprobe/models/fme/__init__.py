"""fme/ACE family: trainer checkpoints (``ckpt.tar``, ``best_ckpt.tar``, ...) through fme's own stepper.

    describe.py  what a checkpoint is, without importing fme (``info``)
    layouts.py   where l sits in each fme filter parameter
    sources.py   what --data names, as fme's own data config (netCDF, zarr, YAML, config:train)
    data.py      samples read by fme's dataset code, or synthetic fields
    quiet.py     drops fme's import-time earth2grid notice (installed on import of this package)
    adapter.py   FmeTarget: fme's own stepper and training forward
    adam.py      per-degree Adam statistics from ckpt.tar's optimizer state

The registry talks to the family only through :func:`claims`, :func:`describe` and :func:`load`.
"""

from __future__ import annotations

from . import quiet as _quiet

NAME = "fme"
_quiet.install()  # every specprobe import of fme passes through this package first


def claims(obj, path) -> bool:
    from .describe import is_fme_checkpoint

    return is_fme_checkpoint(obj)


def describe(path, obj, *, trust: bool = False) -> dict:
    from .describe import describe_fme_checkpoint

    return describe_fme_checkpoint(obj, path)


def load(path, obj, *, device="cpu", trust: bool = False, ema: bool = False,
         degree_axis_overrides: dict | None = None, **options):
    from .adapter import load_fme_target

    return load_fme_target(path, device=device, ema=ema, trust=trust, obj=obj,
                           degree_axis_overrides=degree_axis_overrides, **options)
