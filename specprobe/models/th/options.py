"""Options a torch-harmonics SFNO file may need: what its weights cannot tell (``--grid``, ``--scale-factor``)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from .infer import check_scale_factor, parse_grid

FLAGS = {"grid": "--grid", "scale_factor": "--scale-factor"}


@dataclass(frozen=True)
class THOptions:
    """torch-harmonics state-dict options, validated on construction (a bad value fails before any file is read).

    Args:
        grid: the data grid, ``"NLATxNLON[:equiangular|legendre-gauss]"`` (grid type default: equiangular);
            None: from the file, or inferred from the weights.
        scale_factor: the SFNO's ``scale_factor`` (integer >= 1); None: from the file or the weights.

    Raises:
        SpecprobeError: a grid that does not parse, or a scale factor that is not an integer >= 1.
    """

    grid: str | None = None
    scale_factor: int | None = None

    def __post_init__(self):
        parse_grid(self.grid)
        check_scale_factor(self.scale_factor)

    def given(self) -> dict:
        """{name: value} of the options that were set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
