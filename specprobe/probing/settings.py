"""What a probe measures, as one validated object: :class:`ProbeSettings` (and its :class:`LossSettings`).

In the style of fme's config dataclasses: every field is checked in ``__post_init__``, so a bad value
fails with one line before any checkpoint is read, and the engine reads the fields as they are. The
command line and :func:`specprobe.probe` build one; :func:`specprobe.probing.engine.run_probe` takes it.
Imports no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..spectral.predictability import DEFAULT_MIN_CHANGE, DEFAULT_R2_THRESHOLD
from ..spectral.whitening import WhiteningConfig, parse_variants

# Elements per degree and parameter that keep a per-element second moment (GSNR, Adam step). Larger
# parameters keep it at a seeded sample of this many columns and report standard errors; the bundled
# model (512 per degree) and the test fixtures stay exact. At ACE scale (embed 256: 131 072 per degree)
# this cuts a variant's accumulators from 8 to ~4.1 bytes per element (benchmarks/RESULTS.md).
DEFAULT_MOMENT_ELEMENTS = 4096

OTHER_PARAMS = ("all", "baseline", "none")


@dataclass(frozen=True)
class LossSettings:
    """The probed loss: ``crps_weight * CRPS + energy_score_weight * ES(whitening)`` (fme's EnsembleLoss).

    Args:
        crps_weight: weight of the CRPS term (>= 0; fme's default 0).
        energy_score_weight: weight of the spectral energy score (> 0).
        crps_alpha: fme's CRPS ``alpha`` (1: the plain fair CRPS).
    """

    crps_weight: float = 0.0
    energy_score_weight: float = 1.0
    crps_alpha: float = 1.0

    def __post_init__(self):
        if self.crps_weight < 0 or self.energy_score_weight <= 0:
            raise ValueError(
                f"crps_weight >= 0 and energy_score_weight > 0 expected, got {self.crps_weight}, {self.energy_score_weight}"
            )


def _check_int(name: str, value, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {value!r}")


@dataclass(frozen=True)
class ProbeSettings:
    """Everything the probe engine measures on a loaded model, validated on construction.

    Args:
        variants: whitening settings besides the always-present baseline: strings
            (``"per_sample:gamma=0.8,eps_frac=0.05"``), fme config dicts or :class:`WhiteningConfig`;
            parsed once, here (``variants`` then holds the parsed configs, baseline excluded).
        n_samples: samples probed (>= 1; >= 2 for a GSNR).
        n_ensemble: ensemble members per sample (fme trains with 2).
        batch_size: samples per forward pass.
        seed: seeds the data, the model's noise and the moment sample.
        bands: degree bands, e.g. ``"low=1:8,high=56:63"``; None: the lowest and highest eighth.
        loss: the probed loss (CRPS and energy-score weights).
        other_params: which variants also differentiate the non-spectral parameters: ``"all"``,
            ``"baseline"`` or ``"none"`` (22-30% cheaper backward; per-degree results unchanged).
        moment_elements: per-degree parameters with more elements per degree keep per-element second
            moments (GSNR, Adam step) at a seeded sample of this many columns (>= 2), with standard errors;
            None keeps them everywhere (exact; 16 more bytes per element per variant).
        r2_threshold, min_change: a degree is noise-dominated when the model's R2 of the change there is
            below ``r2_threshold`` and the change is at least ``min_change`` of the state's power.

    Raises:
        ValueError: a field out of range, or a whitening setting that does not parse.
    """

    variants: tuple = ("per_sample",)
    n_samples: int = 8
    n_ensemble: int = 2
    batch_size: int = 1
    seed: int = 0
    bands: str | None = None
    loss: LossSettings = LossSettings()
    other_params: str = "all"
    moment_elements: int | None = DEFAULT_MOMENT_ELEMENTS
    r2_threshold: float = DEFAULT_R2_THRESHOLD
    min_change: float = DEFAULT_MIN_CHANGE

    def __post_init__(self):
        if self.other_params not in OTHER_PARAMS:
            raise ValueError(f"other_params: expected 'all', 'baseline' or 'none', got {self.other_params!r}")
        for name, lo in (("n_samples", 1), ("n_ensemble", 1), ("batch_size", 1)):
            _check_int(name, getattr(self, name), lo)
        if self.moment_elements is not None:
            _check_int("moment_elements", self.moment_elements, 2)
        if not math.isfinite(self.r2_threshold):
            raise ValueError(f"r2_threshold: expected a finite number, got {self.r2_threshold!r}")
        if not (math.isfinite(self.min_change) and self.min_change >= 0):
            raise ValueError(f"min_change: expected a finite number >= 0, got {self.min_change!r}")
        variants = (self.variants,) if isinstance(self.variants, (str, dict, WhiteningConfig)) else self.variants
        object.__setattr__(self, "variants", tuple(parse_variants(variants)[1:]))
        if not isinstance(self.loss, LossSettings):
            raise ValueError(f"loss: expected a LossSettings, got {type(self.loss).__name__}")

    @property
    def configs(self) -> list[WhiteningConfig]:
        """The loss variants the engine backpropagates: the baseline first, then :attr:`variants`."""
        return [WhiteningConfig(), *self.variants]

    def provenance(self) -> dict:
        """The settings as result.json's ``provenance.options`` records them."""
        return {"variants": [c.name for c in self.configs], "n_samples": self.n_samples,
                "n_ensemble": self.n_ensemble, "batch_size": self.batch_size, "bands": self.bands or "default",
                "other_params": self.other_params,
                "moment_elements": self.moment_elements if self.moment_elements is not None else "all",
                "r2_threshold": self.r2_threshold, "min_change": self.min_change}
