"""fme/ACE family: trainer checkpoints (``ckpt.tar``, ``best_ckpt.tar``, ...) through fme's own stepper.

    describe.py  what a checkpoint is, without importing fme (``info``)
    layouts.py   where l sits in each fme filter parameter
    sources.py   what --data names, as fme's own data config (netCDF, zarr, YAML, config:train)
    data.py      samples read by fme's dataset code, or synthetic fields
    quiet.py     drops fme's import-time earth2grid notice (installed on import of this package)
    adapter.py   FmeTarget: fme's own stepper and training forward
    rollout.py   fme's K-step training rollout (n_forward_steps, optimize_last_step_only, step weights)
    adam.py      per-degree Adam statistics from ckpt.tar's optimizer state

The registry talks to the family only through :func:`claims`, :func:`describe_file` and :func:`load`
(``describe_file``, not ``describe``: the submodule ``describe.py`` would shadow a function of that name
as soon as it is imported).
"""

from __future__ import annotations

from . import quiet as _quiet

NAME = "fme"
_quiet.install()  # every specprobe import of fme passes through this package first


def claims(obj, path) -> bool:
    from .describe import is_fme_checkpoint

    return is_fme_checkpoint(obj)


# torch-harmonics state-dict options: an fme checkpoint declares its grid itself.
_TH_ONLY = {"grid": "--grid", "scale_factor": "--scale-factor"}


def _refuse_th_options(path, options: dict) -> dict:
    from ...errors import CheckpointError

    given = [flag for key, flag in _TH_ONLY.items() if options.get(key) is not None]
    if given:
        raise CheckpointError(f"{path}: {', '.join(given)} apply to torch-harmonics state dicts; an fme checkpoint "
                              "declares its grid")
    return {k: v for k, v in options.items() if k not in _TH_ONLY}


def describe_file(path, obj, *, trust: bool = False, **options) -> dict:
    from .describe import describe_fme_checkpoint

    _refuse_th_options(path, options)
    return describe_fme_checkpoint(obj, path)


def load(path, obj, *, device="cpu", trust: bool = False, ema: bool = False,
         degree_axis_overrides: dict | None = None, **options):
    from .adapter import load_fme_target

    options = _refuse_th_options(path, options)

    return load_fme_target(path, device=device, ema=ema, trust=trust, obj=obj,
                           degree_axis_overrides=degree_axis_overrides, **options)
