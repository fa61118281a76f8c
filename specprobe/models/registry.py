"""Which family reads a checkpoint: one dispatch over the family packages (``th``, ``fme``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from . import fme, th
from .safe_load import check_readable_file, load_checkpoint_file

# Order matters only for files two families could claim; the specprobe format is tagged, fme's has a
# ``stepper``, and a torch-harmonics state dict (bare, wrapped, Lightning) is the loosest match, so it goes last.
FAMILIES = (fme, th)


def default_checkpoint() -> Path:
    """The bundled, really trained shallow-water SFNO (see docs/bundled_model.md)."""
    from .th.format import default_checkpoint_path

    return Path(default_checkpoint_path())


def resolve_checkpoint(checkpoint) -> Path:
    """A checkpoint file; None, ``bundled`` or ``bundled:swe`` is the default bundled model, ``bundled:NAME``
    another bundled model (``bundled:noisy``: small scales driven by stochastic forcing; docs/bundled_model.md).
    A file of that name, where one exists, wins over the bundled name."""
    if checkpoint is None:
        return default_checkpoint()
    name = bundled_name(checkpoint)
    if name is not None:
        from .th.format import BUNDLED, bundled_paths

        if name not in BUNDLED:
            raise CheckpointError(f"{checkpoint}: no bundled model {name!r}; the bundled models are "
                                  + ", ".join(f"bundled:{n}" for n in BUNDLED))
        return check_readable_file(bundled_paths(name)[0])
    return check_readable_file(checkpoint)


def bundled_name(checkpoint) -> str | None:
    """``bundled`` -> the default's name, ``bundled:NAME`` -> NAME; None for anything else or an existing file."""
    import re

    from .th.format import DEFAULT_BUNDLED

    text = str(checkpoint)
    m = re.fullmatch(r"bundled(?::([\w-]*))?", text)
    if m is None or Path(text).exists():
        return None
    return m.group(1) or DEFAULT_BUNDLED


def family_of(obj, path):
    """The family package that reads ``obj``; a one-line error naming what was found otherwise."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: unknown checkpoint family (the file holds a {type(obj).__name__}, not a dict)")
    for family in FAMILIES:
        if family.claims(obj, path):
            return family
    keys = sorted(map(str, obj))[:8]
    raise CheckpointError(
        f"{path}: unknown checkpoint family (top-level {keys}); expected a specprobe torch-harmonics SFNO file, "
        "a torch-harmonics SFNO state dict (bare, wrapped or Lightning), or an fme/ACE checkpoint"
    )


def detect_family(obj, path) -> str:
    return family_of(obj, path).NAME


def describe_checkpoint(checkpoint=None, *, trust: bool = False, **options) -> dict:
    """``specprobe info``: what a checkpoint is, without building a model where avoidable.

    options: family options such as ``grid``/``scale_factor`` (torch-harmonics state dicts); None = unset."""
    path = resolve_checkpoint(checkpoint)
    obj = load_checkpoint_file(path, trust=trust)
    family = family_of(obj, path)
    return {"path": str(path), "family": family.NAME, **family.describe_file(path, obj, trust=trust, **options)}


def load_target(checkpoint=None, *, device="cpu", trust: bool = False, ema: bool = False,
                degree_axis_overrides: dict | None = None, **options):
    """Build the :class:`ProbeTarget` for a checkpoint file (None: the bundled default)."""
    path = resolve_checkpoint(checkpoint)
    obj = load_checkpoint_file(path, trust=trust)
    return family_of(obj, path).load(path, obj, device=device, trust=trust, ema=ema,
                                     degree_axis_overrides=degree_axis_overrides, **options)
