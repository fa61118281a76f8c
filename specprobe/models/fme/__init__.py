"""fme/ACE family: trainer checkpoints (``ckpt.tar``, ``best_ckpt.tar``, ...) through fme's own stepper.

    describe.py  what a checkpoint is, without importing fme (``info``)
    layouts.py   where l sits in each fme filter parameter
    options.py   FmeOptions: loss, data and rollout options instead of the run's training config
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


def _refuse_th_options(path, options) -> None:
    """An fme checkpoint declares its grid: ``--grid`` / ``--scale-factor`` are errors here, not ignored."""
    from ...errors import CheckpointError
    from ..th.options import FLAGS

    given = [FLAGS[name] for name in options.th.given()]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise CheckpointError(f"{path}: {', '.join(given)} {verb} to torch-harmonics state dicts; an fme checkpoint "
                              "declares its grid")


def describe_file(path, obj, options) -> dict:
    """``specprobe info`` for an fme checkpoint (``options``: :class:`~specprobe.models.options.LoadOptions`)."""
    from .describe import describe_fme_checkpoint

    _refuse_th_options(path, options)
    return describe_fme_checkpoint(obj, path)


def load(path, obj, *, device="cpu", options):
    """The :class:`~specprobe.models.fme.adapter.FmeTarget` of a safely loaded fme checkpoint ``obj``.

    ``options``: :class:`~specprobe.models.options.LoadOptions`; its ``fme`` part goes to the target."""
    from .adapter import load_fme_target

    _refuse_th_options(path, options)
    return load_fme_target(path, options.fme, device=device, ema=options.ema, trust=options.trust, obj=obj)
