"""torch-harmonics SFNO family: the ``specprobe.th-sfno`` format, plain state dicts (+ sidecar).

    format.py      the format's names, bundled files, atomic writer (imports nothing else here)
    checkpoint.py  read and validate a file -> CheckpointSpec; build the model
    model.py       StochasticSFNO: noise channels -> ensemble, as fme trains
    data.py        the ``specprobe.th-sfno-data`` held-out sample format
    target.py      THSFNOTarget, the torch-harmonics ProbeTarget
    swe.py         shallow-water trajectories (training data of the bundled model)

The registry talks to the family only through :func:`claims`, :func:`describe` and :func:`load`.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import CheckpointError
from .format import FAMILY, is_th_checkpoint

NAME = FAMILY


def claims(obj, path) -> bool:
    """True when ``obj`` (a safely loaded file) is this family's; raises when it nearly is."""
    from .checkpoint import _plain_state_dict, sidecar_candidates

    if is_th_checkpoint(obj):
        return True
    plain = _plain_state_dict(obj)
    if plain is None or not any(str(k).startswith("blocks.") for k in plain):
        return False
    if any(c.is_file() and c != Path(path) for c in sidecar_candidates(path)):
        return True
    names = " or ".join(c.name for c in sidecar_candidates(path))
    raise CheckpointError(f"{path}: a torch-harmonics SFNO state dict needs its constructor arguments as JSON "
                          f"in {names}")


def describe(path, obj, *, trust: bool = False) -> dict:
    return load(path, obj, trust=trust).describe()


def load(path, obj, *, device="cpu", trust: bool = False, ema: bool = False,
         degree_axis_overrides: dict | None = None, **options):
    from .checkpoint import load_th_target

    if ema:
        raise CheckpointError(f"{path}: --ema: torch-harmonics SFNO files carry no EMA weights")
    if degree_axis_overrides:
        raise CheckpointError(f"{path}: --degree-axis applies to fme checkpoints; this torch-harmonics SFNO's "
                              "degree axes are known (global_conv.weight, axis 2)")
    if options:
        raise CheckpointError(f"{path}: option(s) {', '.join(sorted(options))} apply to fme checkpoints only")
    return load_th_target(path, device=device, trust=trust, obj=obj)
