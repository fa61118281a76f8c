"""Which family reads a checkpoint: one dispatch over the family packages (``th``, ``fme``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckpointError
from . import fme, th
from .options import LoadOptions

if TYPE_CHECKING:
    import torch

    from .base import ProbeTarget
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


def describe_checkpoint(checkpoint=None, options: LoadOptions | None = None, **kwargs) -> dict:
    """``specprobe info``: what a checkpoint is, without building a model where avoidable.

    Args:
        checkpoint: a file, ``bundled[:NAME]``, or None (the bundled default).
        options: how to read it (:class:`LoadOptions`); None builds one from ``kwargs``
            (``grid=``, ``scale_factor=``, ``trust=``; None values are unset).

    Returns:
        {path, family, ...the family's description: grid, channels, spectral parameters, training}.
    """
    options = _options(options, kwargs)
    path = resolve_checkpoint(checkpoint)
    obj = load_checkpoint_file(path, trust=options.trust)
    family = family_of(obj, path)
    return {"path": str(path), "family": family.NAME, **family.describe_file(path, obj, options)}


def load_target(checkpoint=None, options: LoadOptions | None = None, *, device: str | torch.device = "cpu",
                **kwargs) -> ProbeTarget:
    """Build the :class:`~specprobe.models.base.ProbeTarget` for a checkpoint file.

    Args:
        checkpoint: a file, ``bundled[:NAME]``, or None (the bundled default).
        options: how to load it (:class:`LoadOptions`); None builds one from ``kwargs``, e.g.
            ``load_target(path, grid="64x128", ema=True)`` (see :meth:`LoadOptions.from_kwargs`).
        device: a ``torch.device`` or its name.

    Returns:
        The family's target (torch-harmonics SFNO or fme stepper) on ``device``.

    Raises:
        CheckpointError: an unreadable or unknown file, or an option that does not apply to its family.
    """
    options = _options(options, kwargs)
    path = resolve_checkpoint(checkpoint)
    obj = load_checkpoint_file(path, trust=options.trust)
    return family_of(obj, path).load(path, obj, device=device, options=options)


def _options(options: LoadOptions | None, kwargs: dict) -> LoadOptions:
    if options is None:
        return LoadOptions.from_kwargs(**kwargs)
    if kwargs:
        raise TypeError(f"give options or keyword options ({', '.join(sorted(kwargs))}), not both")
    return options
