"""Which adapter reads a checkpoint: the one place that knows every family."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from .safe_load import check_readable_file, load_checkpoint_file


def default_checkpoint() -> Path:
    """The bundled, really trained shallow-water SFNO (see README, "The bundled model")."""
    from .th_checkpoint import default_checkpoint_path

    return Path(default_checkpoint_path())


def resolve_checkpoint(checkpoint) -> Path:
    return default_checkpoint() if checkpoint is None else check_readable_file(checkpoint)


def detect_family(obj, path) -> str:
    from .fme_describe import is_fme_checkpoint
    from .th_checkpoint import _plain_state_dict, is_th_checkpoint, sidecar_candidates

    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: unknown checkpoint family (the file holds a {type(obj).__name__}, not a dict)")
    if is_th_checkpoint(obj):
        return "torch-harmonics-sfno"
    if is_fme_checkpoint(obj):
        return "fme"
    plain = _plain_state_dict(obj)
    if plain is not None and any(str(k).startswith("blocks.") for k in plain):
        if any(c.is_file() and c != Path(path) for c in sidecar_candidates(path)):
            return "torch-harmonics-sfno"
        names = " or ".join(c.name for c in sidecar_candidates(path))
        raise CheckpointError(f"{path}: a torch-harmonics SFNO state dict needs its constructor arguments as JSON "
                              f"in {names}")
    keys = sorted(map(str, obj))[:8]
    raise CheckpointError(
        f"{path}: unknown checkpoint family (top-level {keys}); expected a specprobe torch-harmonics SFNO file, "
        "a torch-harmonics state dict with a .json sidecar of constructor arguments, or an fme/ACE checkpoint"
    )


def describe_checkpoint(checkpoint=None, *, trust: bool = False) -> dict:
    """``specprobe info``: what a checkpoint is, without building a model where avoidable."""
    path = resolve_checkpoint(checkpoint)
    obj = load_checkpoint_file(path, trust=trust)
    family = detect_family(obj, path)
    if family == "fme":
        from .fme_describe import describe_fme_checkpoint

        info = describe_fme_checkpoint(obj, path)
    else:
        from .th_checkpoint import load_th_target

        info = load_th_target(path, trust=trust, obj=obj).describe()
    return {"path": str(path), "family": family, **info}


def load_target(checkpoint=None, *, device="cpu", trust: bool = False, ema: bool = False,
                degree_axis_overrides: dict | None = None, **fme_options):
    """Build the :class:`ProbeTarget` for a checkpoint file (None: the bundled default)."""
    path = resolve_checkpoint(checkpoint)
    obj = load_checkpoint_file(path, trust=trust)
    family = detect_family(obj, path)
    if family == "fme":
        from .fme_adapter import load_fme_target

        return load_fme_target(path, device=device, ema=ema, trust=trust, obj=obj,
                               degree_axis_overrides=degree_axis_overrides, **fme_options)
    if ema:
        raise CheckpointError(f"{path}: --ema: torch-harmonics SFNO files carry no EMA weights")
    if degree_axis_overrides:
        raise CheckpointError(f"{path}: --degree-axis applies to fme checkpoints; this torch-harmonics SFNO's "
                              "degree axes are known (global_conv.weight, axis 2)")
    from .th_checkpoint import load_th_target

    return load_th_target(path, device=device, trust=trust, obj=obj)
