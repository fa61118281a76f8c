"""How to load a checkpoint, as one validated object: :class:`LoadOptions`.

The command line does not know a checkpoint's family before reading it, so it fills one
``LoadOptions`` with everything the user gave; the family that claims the file takes its own part
(:class:`~specprobe.models.fme.options.FmeOptions` or :class:`~specprobe.models.th.options.THOptions`)
and refuses, in one line, options that belong to the other family. Imports neither torch nor fme.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import SpecprobeError
from .fme.options import FmeOptions
from .th.options import THOptions

_ALIASES = {"trust_checkpoint": "trust", "degree_axis_overrides": "degree_axis"}


@dataclass(frozen=True)
class LoadOptions:
    """Everything that decides how a checkpoint becomes a probe target (besides the device).

    Args:
        trust: allow full unpickling of the file (runs code from it; only for files you made).
        ema: fme ``ckpt.tar``: use the EMA weights.
        fme: options for fme/ACE checkpoints.
        th: options for torch-harmonics SFNO state dicts.
    """

    trust: bool = False
    ema: bool = False
    fme: FmeOptions = field(default_factory=FmeOptions)
    th: THOptions = field(default_factory=THOptions)

    @classmethod
    def from_kwargs(cls, **kwargs) -> "LoadOptions":
        """Route flat keyword options to their family: ``LoadOptions.from_kwargs(grid="64x128", ema=True)``.

        Args:
            **kwargs: ``trust`` (or ``trust_checkpoint``), ``ema``, and any field of :class:`FmeOptions`
                (``degree_axis`` also as ``degree_axis_overrides``) or :class:`THOptions`; None values are unset.

        Returns:
            The validated options.

        Raises:
            SpecprobeError: an unknown option name, or a value its family refuses.
        """
        own, per_family = {}, {"fme": {}, "th": {}}
        fme_names = {f.name for f in fields(FmeOptions)}
        th_names = {f.name for f in fields(THOptions)}
        for key, value in kwargs.items():
            name = _ALIASES.get(key, key)
            if name in ("trust", "ema"):
                own[name] = bool(value)
            elif value is None:
                continue
            elif name in fme_names:
                per_family["fme"][name] = value
            elif name in th_names:
                per_family["th"][name] = value
            else:
                known = sorted({"trust", "ema", *fme_names, *th_names})
                raise SpecprobeError(f"unknown checkpoint option {key!r}; expected one of {', '.join(known)}")
        return cls(**own, fme=FmeOptions(**per_family["fme"]), th=THOptions(**per_family["th"]))

    def given(self) -> dict:
        """The family options that were set, by name (what a result's provenance records as options)."""
        fme = {k: v for k, v in self.fme.given().items() if k != "degree_axis"}
        return {**self.th.given(), **fme}
