"""Predictability by degree: how much of the target's change the ensemble mean explains, per (channel, l).

All quantities are degree powers (``degree_power``, m > 0 doubled) of loss-space coefficients, summed
over samples; x is the persistence reference (the input state of a residual one-step model), y the
target, X_e the E ensemble members and mean their average:

    change_l   = E|y - x|^2_l                 state_l = E|x|^2_l
    error_l    = E|mean - y|^2_l              spread_l = E[ sum_e |X_e - mean|^2_l / (E - 1) ]
    error*_l   = error_l - spread_l / E       (the error of the infinite-ensemble mean: unbiased for
                                               exchangeable members; E = 1 has no spread term; an
                                               estimate, so with few samples and a tiny change R2 can
                                               come out above 1 at a degree, e.g. l = 1)
    R2_l       = 1 - error*_l / change_l      1: the change is predicted exactly; 0: no better than
                                              persistence; < 0: worse than persistence
    R2_mean_l  = 1 - error_l / change_l       the same with the E-member mean as it is (lower for small
                                              E: a calibrated 2-member mean has 1.5x the noise error)
    spread/skill_l = sqrt((1 + 1/E) spread_l / error_l)   1 for a calibrated ensemble, < 1 under-dispersive
    change/state_l = change_l / state_l       how much the target moves at that degree in one step

A degree is **noise-dominated** when the model explains little of the change AND the change is not small
against the state: R2_l < ``r2_threshold`` (default 0.1) and change/state_l >= ``min_change`` (default
0.1), for l >= 1. Why both: in one 3-hour step the largest scales barely move (change/state ~ 0.01), so
even a good model's R2 there is dominated by tiny errors of a tiny change and can be below 0 without
those degrees being noise; requiring the change to be at least a tenth of the state's power at that
degree leaves them out. Why 0.1: below it the model explains less than a tenth of the change, so at
least 90% of what the energy score compares there is the part of the change the model does not
predict, which for a trained model is mostly the unpredictable part (a fully unpredictable,
persistent degree gives R2 ~ 0; one that forgets its state within a step gives up to 0.5 for a model
that predicts the climatological mean). l = 0 (the global mean) is never flagged: it is not a scale,
and for the winds both its state and change are ~0, so its ratios are noise of tiny numbers.

No torch at import; the functions import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import torch

DEFAULT_R2_THRESHOLD = 0.1
DEFAULT_MIN_CHANGE = 0.1
SUM_KEYS = ("error", "spread", "change", "state", "target")

CONVENTIONS = {
    "reference": "x = the persistence reference: the input state of the probed step in loss space (a residual "
                 "model's input; fme: the prognostic input, none for diagnostic-only outputs, whose rows are null)",
    "r2": "R2_l = 1 - (E|mean - y|^2_l - spread_l / E) / E|y - x|^2_l: the share of the target's change at degree l "
          "that the infinite-ensemble mean explains (degree power, m > 0 doubled, loss space, summed over samples); "
          "1 exact, 0 persistence, < 0 worse than persistence",
    "r2_ensemble_mean": "1 - E|mean - y|^2_l / E|y - x|^2_l with the probe's E-member mean as it is",
    "spread_skill": "sqrt((1 + 1/E) spread_l / E|mean - y|^2_l), spread_l = E[sum_e |X_e - mean|^2_l / (E - 1)]; "
                    "1 calibrated, < 1 under-dispersive",
    "change_over_state": "E|y - x|^2_l / E|x|^2_l: how far the target moves at degree l in one step",
    "noise_dominated": "R2_l < r2_threshold and change_over_state_l >= min_change, l >= 1",
    "es_weight_share": "per variant: sum over noise-dominated (channel, l) of fme's per-degree energy-score "
                       "contribution (mode weight x whitening factor x fair ES per mode, summed over m, / 2 sqrt(LM), "
                       "mean over samples and channels) over the total over all (channel, l); contributions are signed "
                       "(a fair ES can be negative), so shares of all degrees sum to 1",
}


def predictability_sums(gen_hat: torch.Tensor, target_hat: torch.Tensor,
                        ref_hat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-channel degree powers summed over the batch: {error, spread, change, state, target} (C, L), float64.

    Physical degree powers (m > 0 doubled) computed in complex128, detached; see the module docstring
    for the definitions. Sums of several batches add up: pass their sum to :meth:`Predictability.from_sums`.

    Args:
        gen_hat: complex SHT coefficients of the ensemble members, shape (B, E, C, L, M).
        target_hat: complex SHT coefficients of the target, shape (B, 1, C, L, M).
        ref_hat: the persistence reference x, shape (B, 1, C, L, M), or None (no persistence reference:
            change and state are NaN). A channel whose reference is NaN (no persistence, e.g. an fme
            diagnostic output) gets NaN change and state.

    Returns:
        ``{"error", "spread", "change", "state", "target"}``, each a float64 tensor (C, L) summed over
        samples; spread is 0 for E = 1.

    Raises:
        ValueError: ``gen_hat`` / ``target_hat`` are not 5-d with a target ensemble dim of 1, or
            ``ref_hat`` does not have the target's shape.
    """
    import torch

    from .spectra import degree_power

    if gen_hat.ndim != 5 or target_hat.ndim != 5 or target_hat.shape[1] != 1:
        raise ValueError(f"gen_hat (B, E, C, L, M) and target_hat (B, 1, C, L, M) expected, got "
                         f"{tuple(gen_hat.shape)}, {tuple(target_hat.shape)}")
    g = gen_hat.detach().to(torch.complex128)
    y = target_hat.detach().to(torch.complex128)[:, 0]
    n_ens = g.shape[1]
    mean = g.mean(dim=1)
    out = {"error": degree_power(mean - y).sum(0), "target": degree_power(y).sum(0)}
    if n_ens > 1:
        out["spread"] = degree_power(g - mean[:, None]).sum(1).sum(0) / (n_ens - 1)
    else:
        out["spread"] = torch.zeros_like(out["error"])
    if ref_hat is None:
        nan = torch.full_like(out["error"], float("nan"))
        out["change"], out["state"] = nan, nan.clone()
    else:
        if tuple(ref_hat.shape) != tuple(target_hat.shape):
            raise ValueError(f"ref_hat: expected the target's shape {tuple(target_hat.shape)}, got {tuple(ref_hat.shape)}")
        x = ref_hat.detach().to(torch.complex128)[:, 0]
        out["change"] = degree_power(y - x).sum(0)
        out["state"] = degree_power(x).sum(0)
    return out


def predictability_from_fields(gen: torch.Tensor, target: torch.Tensor, ref: torch.Tensor | None = None, *,
                               grid: str = "legendre-gauss") -> dict[str, torch.Tensor]:
    """:func:`predictability_sums` of grid fields (B, E, C, H, W), (B, 1, C, H, W), ref like target or None.

    Args:
        gen: real ensemble members on the grid, shape (B, E, C, H, W).
        target: the real target on the grid, shape (B, 1, C, H, W).
        ref: the persistence reference on the grid, shape (B, 1, C, H, W), or None (none: change and
            state are NaN).
        grid: the SHT grid of the fields (default ``"legendre-gauss"``, fme's loss grid).

    Returns:
        ``{"error", "spread", "change", "state", "target"}``, each a float64 tensor (C, L); see
        :func:`predictability_sums`.

    Raises:
        ValueError: the fields are not real tensors of the expected shapes.
    """
    from .sht import to_spectral

    return predictability_sums(to_spectral(gen, grid=grid), to_spectral(target, grid=grid),
                               None if ref is None else to_spectral(ref, grid=grid))


@dataclass
class Predictability:
    """Per channel and degree (numpy arrays (C, L)) from summed powers; see the module docstring.

    Build it with :meth:`from_sums`. A ratio whose denominator is 0 or NaN is NaN.

    Attributes:
        r2: R2_l of the infinite-ensemble mean, float (C, L).
        r2_ensemble_mean: R2_l of the E-member mean as it is, float (C, L).
        spread_skill: sqrt((1 + 1/E) spread_l / error_l), float (C, L); zeros for E = 1.
        change_over_state: change_l / state_l, float (C, L).
        noise_dominated: bool (C, L), see :func:`noise_mask`.
        n_ensemble: the ensemble size E.
        r2_threshold: the R2 threshold of ``noise_dominated`` (default 0.1).
        min_change: the change/state minimum of ``noise_dominated`` (default 0.1).
    """

    r2: np.ndarray
    r2_ensemble_mean: np.ndarray
    spread_skill: np.ndarray
    change_over_state: np.ndarray
    noise_dominated: np.ndarray  # bool (C, L)
    n_ensemble: int
    r2_threshold: float = DEFAULT_R2_THRESHOLD
    min_change: float = DEFAULT_MIN_CHANGE

    @classmethod
    def from_sums(cls, sums: dict, *, n_ensemble: int, r2_threshold: float = DEFAULT_R2_THRESHOLD,
                  min_change: float = DEFAULT_MIN_CHANGE) -> Predictability:
        """The ratios and the noise mask from summed powers (:func:`predictability_sums`, possibly summed further).

        Args:
            sums: ``{"error", "spread", "change", "state"}`` (``"target"`` optional), each (C, L), as torch
                tensors or array-likes.
            n_ensemble: the ensemble size E the sums were made with.
            r2_threshold: R2 below which a degree can be noise-dominated (default 0.1).
            min_change: change/state at or above which a degree can be noise-dominated (default 0.1).

        Returns:
            The per-channel, per-degree predictability.
        """
        import numpy as np

        s = {k: np.asarray(_numpy(sums[k]), dtype=float) for k in SUM_KEYS if k in sums}
        e = int(n_ensemble)
        with np.errstate(invalid="ignore", divide="ignore"):
            fair = s["error"] - (s["spread"] / e if e > 1 else 0.0)
            change = np.where(s["change"] > 0, s["change"], np.nan)
            r2 = 1.0 - fair / change
            r2_mean = 1.0 - s["error"] / change
            skill = np.where(s["error"] > 0, s["error"], np.nan)
            spread_skill = np.sqrt((1.0 + 1.0 / e) * s["spread"] / skill) if e > 1 else np.zeros_like(r2)
            ratio = s["change"] / np.where(s["state"] > 0, s["state"], np.nan)
        mask = noise_mask(r2, ratio, r2_threshold=r2_threshold, min_change=min_change)
        return cls(r2, r2_mean, spread_skill, ratio, mask, e, r2_threshold, min_change)

    def to_dict(self, channels: Sequence[str]) -> dict:
        """JSON-ready: {thresholds, channels: {name: {r2, r2_ensemble_mean, spread_skill, change_over_state,
        noise_dominated (degree list)}}}.

        Args:
            channels: the channel names, in the order of the arrays' first axis.

        Returns:
            ``{"r2_threshold", "min_change", "n_ensemble", "channels": {name: {"r2", "r2_ensemble_mean",
            "spread_skill", "change_over_state" (lists of floats per degree; NaN kept), "noise_dominated"
            (the flagged degrees), "has_reference" (any finite change/state)}}}``.
        """
        import numpy as np

        out = {"r2_threshold": self.r2_threshold, "min_change": self.min_change, "n_ensemble": self.n_ensemble,
               "channels": {}}
        for i, ch in enumerate(channels):
            out["channels"][ch] = {
                "r2": _floats(self.r2[i]), "r2_ensemble_mean": _floats(self.r2_ensemble_mean[i]),
                "spread_skill": _floats(self.spread_skill[i]), "change_over_state": _floats(self.change_over_state[i]),
                "noise_dominated": [int(l) for l in np.flatnonzero(self.noise_dominated[i])],
                "has_reference": bool(np.isfinite(self.change_over_state[i]).any()),
            }
        return out


def noise_mask(r2: Any, change_over_state: Any, *, r2_threshold: float = DEFAULT_R2_THRESHOLD,
               min_change: float = DEFAULT_MIN_CHANGE) -> np.ndarray:
    """Boolean (C, L): R2 < threshold and change/state >= min_change, never l = 0; NaN compares False.

    Args:
        r2: R2 per channel and degree, array-like (C, L) (any leading dims; degree last).
        change_over_state: change/state per channel and degree, array-like of the same shape.
        r2_threshold: flag degrees with R2 below this (default 0.1).
        min_change: and only those whose change/state is at or above this (default 0.1).

    Returns:
        A bool array of the inputs' (broadcast) shape; False at l = 0 and wherever either value is NaN.
    """
    import numpy as np

    r2, ratio = np.asarray(r2, dtype=float), np.asarray(change_over_state, dtype=float)
    with np.errstate(invalid="ignore"):
        mask = (r2 < r2_threshold) & (ratio >= min_change)
    mask[..., 0] = False
    return mask


def weight_share(per_degree: Any, mask: Any) -> float:
    """Share of the energy-score loss's per-degree contributions (C, L) falling on ``mask`` (C, L).

    Contributions are signed (a fair energy score can be negative), so a share can lie outside [0, 1].

    Args:
        per_degree: per-(channel, degree) contributions, e.g. ``EnergyScoreLossTerms.per_degree``; a torch
            tensor or array-like (C, L). NaN entries count as 0.
        mask: bool array-like (C, L), e.g. :attr:`Predictability.noise_dominated`.

    Returns:
        sum of the contributions on ``mask`` / sum of all contributions; NaN when the total is 0.
    """
    import numpy as np

    w = np.asarray(_numpy(per_degree), dtype=float)
    total = float(np.nansum(w))
    if not total:
        return float("nan")
    return float(np.nansum(np.where(np.asarray(mask, dtype=bool), w, 0.0))) / total


def band_r2(sums: dict, channel: int, lo: int, hi: int, *, n_ensemble: int) -> float:
    """R2 over a degree band (powers summed over lo..hi before the ratio: a power-weighted band value).

    Args:
        sums: summed powers as from :func:`predictability_sums` ({error, spread, change, ...}, each (C, L));
            NaN entries count as 0.
        channel: the channel's index (first axis).
        lo: the band's first degree.
        hi: the band's last degree (inclusive).
        n_ensemble: the ensemble size E.

    Returns:
        1 - (error - spread / E) / change over the band (no spread term for E = 1); NaN when the band's
        change is 0 or missing.
    """
    import numpy as np

    sl = slice(lo, hi + 1)
    s = {k: float(np.nansum(np.asarray(_numpy(sums[k]), dtype=float)[channel, sl])) for k in SUM_KEYS if k in sums}
    e = int(n_ensemble)
    if not s.get("change"):
        return float("nan")
    return 1.0 - (s["error"] - (s["spread"] / e if e > 1 else 0.0)) / s["change"]


def _numpy(t):
    import numpy as np

    if hasattr(t, "detach"):
        return t.detach().cpu().double().numpy()
    return np.asarray(t)


def _floats(a) -> list:
    return [float(v) for v in a]


def summary_columns(predictability: dict | None) -> dict:
    """The few numbers a sweep, series or compare row carries from a result's ``predictability`` dict.

    Args:
        predictability: a result's ``predictability`` block (``ProbeResult.predictability``), or None.

    Returns:
        ``{"noise_dominated" (count of (channel, l)), "es_weight_share" {variant: share}, "r2_band"
        {channel: {band: R2}}, "r2_threshold", "min_change"}``; empty for results written before
        predictability (or without a persistence reference).
    """
    p = predictability or {}
    chans = p.get("channels") or {}
    if not any(c.get("has_reference") for c in chans.values()):
        return {}
    return {"noise_dominated": p.get("noise_dominated_count"),
            "es_weight_share": dict(p.get("es_weight_share") or {}),
            "r2_band": {ch: {b: v.get("r2") for b, v in bands.items()} for ch, bands in (p.get("bands") or {}).items()},
            "r2_threshold": p.get("r2_threshold"), "min_change": p.get("min_change")}
