"""ProbeResult: the probe's findings as plain data (lists, dicts, floats) — no tensors, no model.

Reporting reads only this (or its JSON), so tables and figures can be re-made from files alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .optstats import CONVENTIONS as OPTIMIZER_CONVENTIONS

SCHEMA = "specprobe.grad-by-l/1"
EARTH_RADIUS_KM = 6371.0

CONVENTIONS = {
    "gradient_norm": "per degree l: L2 norm over every element of the parameter at that degree "
                     "(all other axes, incl. re/im) of the gradient of the mean loss over all probed samples; "
                     "'total' is the root-sum-square over the per-degree parameters",
    "gsnr": "per element: mean^2 / variance (unbiased) of per-sample gradients; averaged over every element at "
            "degree l of every per-degree parameter (elements with zero variance left out). Parameters with more "
            "elements per degree than provenance moment_sampling.elements_per_degree keep per-element variances "
            "at a seeded sample of columns only: the average is then an estimate, with its standard error in "
            "gsnr_stderr_by_l (0 where exact); the same holds for adam_step (adam_step_by_l[v]['stderr'])",
    "output_grad": "per degree l: L2 norm over (sample, member, channel, m) of d loss / d gen_hat",
    "wavelength_km": "2 pi R / sqrt(l (l + 1)), R = 6371 km",
    "whitening_factor": "fme SpectralWhitening.factor per (sample, channel, l): mean, 10th and 90th percentile over samples",
    **{k: v for k, v in OPTIMIZER_CONVENTIONS.items()},
    "precision": "float32 models. Means (grad_by_l, direction_cosine, switch_step, other_params) come from a float32 "
                 "running mean: relative error about 6e-8 x sqrt(n_samples) per element (2e-6 at 1000 samples); a "
                 "cosine carries the same absolute error. gsnr and adam_step of per-degree parameters come from float64 "
                 "Welford moments (merged over processes in float64): relative error <= 1e-12 + 1e-15 x the largest "
                 "element GSNR at that degree. adam_step of non-spectral groups comes from float32 moments: relative "
                 "error <= 1e-6 (E g^2 does not cancel). Not included: the rounding of the float32 gradients "
                 "themselves; a relative change d in them (thread count, device, batch composition) moves a GSNR by "
                 "about 2 d sqrt(GSNR) relative",
    "es_skill_spread": "per channel and degree, baseline loss weighting (mode weights, 1/(2 sqrt(LM)), mean over samples): "
                       "skill = E|X - y|, spread = 0.5 E|X - X'|, ES = skill - spread",
}


def wavelength_km(degree: int) -> float:
    """The wavelength of spherical-harmonic degree l on the Earth: 2 pi R / sqrt(l (l + 1)), R = 6371 km.

    Args:
        degree: the degree l.

    Returns:
        The wavelength in km; inf for l <= 0 (the global mean has no wavelength).
    """
    return math.inf if degree <= 0 else 2 * math.pi * EARTH_RADIUS_KM / math.sqrt(degree * (degree + 1))


def epoch_of(result: ProbeResult) -> int | None:
    """Training progress of the probed checkpoint: fme's epoch, else the th format's training steps.

    Args:
        result: a probe result; read from its ``provenance["model"]``.

    Returns:
        The model provenance's ``epoch``, else its ``step``, else ``training.epoch``, else
        ``training.steps``; None when none is recorded.
    """
    model = result.provenance.get("model", {})
    for key in ("epoch", "step"):
        if model.get(key) is not None:
            return model[key]
    training = model.get("training") or {}
    return training.get("epoch", training.get("steps"))


def json_safe(x: Any) -> Any:
    """A copy of ``x`` (dicts, lists, floats) that JSON can hold: NaN and Inf become null.

    Args:
        x: a JSON-like value (nested dicts and lists of numbers and strings).

    Returns:
        The same structure with every non-finite float replaced by None (tuples become lists; other
        values are returned as they are).
    """
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def from_json_safe(x: Any) -> Any:
    """The inverse of :func:`json_safe` for numeric fields: null (None) becomes NaN, recursively.

    Args:
        x: a value read from JSON (nested dicts and lists).

    Returns:
        A copy of the dicts and lists with every None replaced by NaN; other values as they are.
    """
    if x is None:
        return math.nan
    if isinstance(x, dict):
        return {k: from_json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [from_json_safe(v) for v in x]
    return x


@dataclass
class ProbeResult:
    """One grad-by-l probe's findings, as plain JSON-ready data (``result.json``).

    Per-degree curves are lists indexed like ``degrees``; the comment beside each field gives its layout
    and ``CONVENTIONS`` (written into every file) defines each quantity. The fields with a default
    (``nonfinite`` onwards) are optional: files written before them load with them empty.
    """

    provenance: dict
    degrees: list[int]
    channels: list[str]
    bands: list[dict]  # [{"name", "lo", "hi"}]
    variants: list[dict]  # [{"name", "whitening": {kind, exponent, eps_frac}}]
    grad_by_l: dict  # {variant: {"total": [...], "layers": {param: [...]}}}
    gsnr_by_l: dict  # {variant: [...]} (empty lists when n_samples < 2)
    output_grad_by_l: dict  # {variant: [...]}
    whitening_factor_by_l: dict  # {variant: {channel: {"mean", "p10", "p90"}}}
    target_power_by_l: dict  # {channel: [...]}
    prediction_power_by_l: dict  # {channel: [...]}
    es_skill_spread_by_l: dict  # {channel: {"skill": [...], "spread": [...]}}
    stats: dict  # {variant: {decline_ratio, spearman_rho, loglog_slope, band_means, gsnr_band_median}, "boost": {...}}
    layer_stats: dict  # {variant: {param: {decline_ratio, spearman_rho}}}
    other_params: dict  # {variant: {param: gradient L2 norm}} for parameters that are not per-degree
    loss: dict  # {variant: mean loss}
    nonfinite: dict = field(default_factory=dict)  # {variant: {param: count of non-finite gradient elements}}
    adam_by_l: dict = field(default_factory=dict)
    # Optimizer-aware statistics (optional: files written before them load with these empty).
    optimizer: dict = field(default_factory=dict)  # {name, eps, betas, lr, source}: the checkpoint's training optimizer
    direction_cosine_by_l: dict = field(default_factory=dict)  # {variant: {"total", "layers", "groups"}}
    adam_step_by_l: dict = field(default_factory=dict)  # {variant: {"total", "layers", "groups", "ratio": {...}}}
    switch_step_by_l: dict = field(default_factory=dict)  # {"variants": {variant: {...}}, "fade": {...}} (Adam state only)
    # Standard error of gsnr_by_l where second moments are sampled (0: exact; provenance "moment_sampling").
    gsnr_stderr_by_l: dict = field(default_factory=dict)  # {variant: [...]}
    # Predictability by degree (optional: files written before it load with it empty); see
    # specprobe.spectral.predictability: {r2_threshold, min_change, n_ensemble, reference, channels: {ch: {r2, ...}},
    # bands, es_weight_by_l: {variant: {ch: [...]}}, es_weight_share: {variant: share}, noise_dominated_count}
    predictability: dict = field(default_factory=dict)
    schema: str = SCHEMA

    @property
    def variant_names(self) -> list[str]:
        """The loss variants' names (``baseline``, ``per_sample(gamma=G,eps_frac=E)``...), in order."""
        return [v["name"] for v in self.variants]

    def to_dict(self) -> dict:
        """The ``result.json`` content: every field (``schema`` first), plus ``wavelength_km`` per degree
        and the ``conventions``.

        Returns:
            A new JSON-safe dict (NaN and Inf as None, see :func:`json_safe`).
        """
        d = asdict(self)
        d = {"schema": d.pop("schema"), **d}
        d["wavelength_km"] = [wavelength_km(l) for l in self.degrees]
        d["conventions"] = CONVENTIONS
        return json_safe(d)

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as strict JSON text (no NaN or Infinity literals).

        Args:
            **kwargs: passed on to :func:`json.dumps` (e.g. ``indent=2``).

        Returns:
            The JSON text.
        """
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    @classmethod
    def from_dict(cls, d: dict) -> ProbeResult:
        """A ProbeResult from its dict (:meth:`to_dict`, or ``result.json`` loaded).

        Nulls in the numeric fields become NaN; unknown keys (e.g. ``wavelength_km``, ``conventions``) are
        ignored; optional fields missing from older files are left empty.

        Args:
            d: the dict; must have ``schema`` ``"specprobe.grad-by-l/1"`` and the keys provenance, degrees,
                variants, grad_by_l and stats.

        Returns:
            The result.

        Raises:
            ValueError: ``d`` is not a dict of this schema, or lacks a required key.
        """
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            got = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"expected a result of schema {SCHEMA!r}, got {got!r}")
        names = {f for f in cls.__dataclass_fields__}
        missing = [k for k in ("provenance", "degrees", "variants", "grad_by_l", "stats") if k not in d]
        if missing:
            raise ValueError(f"result is missing keys {missing}")
        kwargs = {k: v for k, v in d.items() if k in names}
        for k in ("grad_by_l", "gsnr_by_l", "output_grad_by_l", "whitening_factor_by_l", "target_power_by_l",
                  "prediction_power_by_l", "es_skill_spread_by_l", "stats", "layer_stats", "adam_by_l",
                  "direction_cosine_by_l", "adam_step_by_l", "switch_step_by_l", "gsnr_stderr_by_l",
                  "predictability"):
            if k in kwargs:
                kwargs[k] = from_json_safe(kwargs[k])
        for k in ("gsnr_by_l", "output_grad_by_l", "whitening_factor_by_l", "target_power_by_l",
                  "prediction_power_by_l", "es_skill_spread_by_l", "layer_stats", "other_params", "loss"):
            kwargs.setdefault(k, {})
        kwargs.setdefault("channels", [])
        kwargs.setdefault("bands", [])
        return cls(**kwargs)
