"""torch-harmonics SFNO family: the ``specprobe.th-sfno`` format, and SFNO state dicts as users have them.

    format.py      the format's names, bundled files, atomic writer (imports nothing else here)
    checkpoint.py  read and validate a file -> CheckpointSpec; build the model
    statedict.py   find the SFNO state dict in a file (wrappers, Lightning, prefixes); refuse other models
    infer.py       constructor arguments from the weights, plus --grid / --scale-factor
    model.py       StochasticSFNO: noise channels -> ensemble, as fme trains
    data.py        the ``specprobe.th-sfno-data`` held-out sample format
    target.py      THSFNOTarget, the torch-harmonics ProbeTarget
    swe.py         shallow-water trajectories (training data of the bundled model)

The registry talks to the family only through :func:`claims`, :func:`describe_file` and :func:`load`.
"""

from __future__ import annotations

from ...errors import CheckpointError
from .format import FAMILY, is_th_checkpoint

NAME = FAMILY


def claims(obj, path) -> bool:
    """True when ``obj`` (a safely loaded file) is this family's; raises when it nearly is (another
    torch-harmonics model, two SFNOs in one file)."""
    from .statedict import find_sfno_state_dict

    return is_th_checkpoint(obj) or find_sfno_state_dict(obj, path) is not None


def describe_file(path, obj, *, trust: bool = False, **options) -> dict:
    return load(path, obj, trust=trust, **options).describe()


def load(path, obj, *, device="cpu", trust: bool = False, ema: bool = False,
         degree_axis_overrides: dict | None = None, grid=None, scale_factor=None, **options):
    """grid (``"NLATxNLON[:type]"``), scale_factor: for a state dict whose weights do not tell them."""
    from .checkpoint import load_th_target

    if ema:
        raise CheckpointError(f"{path}: --ema: torch-harmonics SFNO files carry no EMA weights")
    if degree_axis_overrides:
        raise CheckpointError(f"{path}: --degree-axis applies to fme checkpoints; this torch-harmonics SFNO's "
                              "degree axes are known (global_conv.weight, axis 2)")
    options = {k: v for k, v in options.items() if v is not None}
    if options:
        raise CheckpointError(f"{path}: option(s) {', '.join(sorted(options))} apply to fme checkpoints only")
    return load_th_target(path, device=device, trust=trust, obj=obj, grid=grid, scale_factor=scale_factor)
