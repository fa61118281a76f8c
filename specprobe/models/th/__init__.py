"""torch-harmonics SFNO family: the ``specprobe.th-sfno`` format, and SFNO state dicts as users have them.

    format.py      the format's names, bundled files, atomic writer (imports nothing else here)
    checkpoint.py  read and validate a file -> CheckpointSpec; build the model
    statedict.py   find the SFNO state dict in a file (wrappers, Lightning, prefixes); refuse other models
    infer.py       constructor arguments from the weights, plus --grid / --scale-factor
    options.py     THOptions: --grid / --scale-factor, validated
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


def describe_file(path, obj, options) -> dict:
    """``specprobe info`` for a torch-harmonics SFNO file (``options``: :class:`~specprobe.models.options.LoadOptions`)."""
    return load(path, obj, options=options).describe()


def load(path, obj, *, device="cpu", options):
    """The :class:`~specprobe.models.th.target.THSFNOTarget` of a safely loaded file ``obj``.

    ``options``: :class:`~specprobe.models.options.LoadOptions`; its ``th`` part (``grid``, ``scale_factor``)
    supplies what a state dict's weights do not tell. fme-only options are one-line errors, not ignored."""
    from .checkpoint import load_th_target

    if options.ema:
        raise CheckpointError(f"{path}: --ema: torch-harmonics SFNO files carry no EMA weights")
    fme_given = options.fme.given()
    if fme_given.pop("degree_axis", None):
        raise CheckpointError(f"{path}: --degree-axis applies to fme checkpoints; this torch-harmonics SFNO's "
                              "degree axes are known (global_conv.weight, axis 2)")
    if fme_given:
        raise CheckpointError(f"{path}: option(s) {', '.join(sorted(fme_given))} apply to fme checkpoints only")
    return load_th_target(path, device=device, trust=options.trust, obj=obj, grid=options.th.grid,
                          scale_factor=options.th.scale_factor)
