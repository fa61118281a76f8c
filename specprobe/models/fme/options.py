"""fme checkpoint options: the loss, data and rollout settings a probe may take from the user instead of
from the run's own training config. Validated on construction; imports neither torch nor fme."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ...errors import SpecprobeError
from .layouts import parse_degree_axis_overrides

FLAGS = {"degree_axis": "--degree-axis", "n_forward_steps": "--n-forward-steps",
         "optimize_last_step_only": "--optimize-last-step-only", "pushforward_steps": "--pushforward-steps",
         "time_start": "--time-start", "time_stop": "--time-stop", "labels": "labels", "loss_weights": "loss_weights",
         "crps_weight": "crps_weight", "energy_score_weight": "energy_score_weight"}


@dataclass(frozen=True)
class FmeOptions:
    """What :class:`~specprobe.models.fme.adapter.FmeTarget` takes besides the checkpoint; None (the default of
    most fields) means "as the run was trained" (its training config, see ``specprobe info``).

    Args:
        degree_axis: {glob over parameter names: degree axis, or None for "not per-degree"}, for filter
            layouts specprobe does not know (``--degree-axis PATTERN=AXIS``; a list of such strings works too).
        n_forward_steps: probe the loss of fme's K-step training rollout (integer >= 1).
        optimize_last_step_only: loss on the rollout's last step only.
        pushforward_steps: initial rollout steps run without gradient and loss (integer >= 0).
        labels: dataset labels active for every sample of a label-conditional model.
        loss_weights: {variable: weight}, replacing the training config's ``loss.weights``.
        time_start, time_stop: the default time window of real data (fme's ``subset``, inclusive; an ISO
            time string, or anything fme's ``subset`` accepts).
        crps_weight, energy_score_weight: the fme ``EnsembleLoss`` that ``FmeTarget.fme_step_loss`` builds
            (a cross-check oracle; the probe computes its own loss).

    Raises:
        SpecprobeError: a value of the wrong type or out of range.
    """

    degree_axis: Mapping[str, int | None] | None = None
    n_forward_steps: int | None = None
    optimize_last_step_only: bool | None = None
    pushforward_steps: int | None = None
    labels: tuple[str, ...] | None = None
    loss_weights: Mapping[str, float] | None = None
    time_start: Any = None
    time_stop: Any = None
    crps_weight: float = 0.0
    energy_score_weight: float = 1.0

    def __post_init__(self):
        if self.degree_axis is not None:
            object.__setattr__(self, "degree_axis", parse_degree_axis_overrides(self.degree_axis) or None)
        for name, lo in (("n_forward_steps", 1), ("pushforward_steps", 0)):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
                raise SpecprobeError(f"{FLAGS[name]}: expected an integer >= {lo}, got {v!r}")
        if self.labels is not None:
            labels = [self.labels] if isinstance(self.labels, str) else list(self.labels)
            if not all(isinstance(x, str) for x in labels):
                raise SpecprobeError(f"labels: expected label names (strings), got {self.labels!r}")
            object.__setattr__(self, "labels", tuple(labels))
        if self.loss_weights is not None:
            if not isinstance(self.loss_weights, Mapping):
                raise SpecprobeError(f"loss_weights: expected {{variable: weight}}, got {self.loss_weights!r}")
            bad = {k: v for k, v in self.loss_weights.items()
                   if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)}
            if bad:
                raise SpecprobeError(f"loss_weights: expected finite numbers, got {bad}")
        if self.crps_weight < 0 or self.energy_score_weight <= 0:
            raise SpecprobeError(f"crps_weight >= 0 and energy_score_weight > 0 expected, got {self.crps_weight}, "
                                 f"{self.energy_score_weight}")

    def given(self) -> dict:
        """{name: value} of the options that differ from their defaults (what a result's provenance records)."""
        defaults = FmeOptions.__dataclass_fields__
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != defaults[f.name].default}
