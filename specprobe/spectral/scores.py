"""Per-degree scores of an ensemble against a target, and their sums over degree bands.

One definition shared by every scorer (lookahead evaluation, rollout health), so a band value means
the same thing everywhere:

* ``es_skill`` / ``es_spread``: the unwhitened fair energy-score terms with fme's per-mode weights and
  its 2 sqrt(LM) normaliser (:mod:`.energy_score`), summed over m; skill - spread summed over l is
  fme's energy-score loss of that sample and channel;
* ``mse``: physical degree power of (ensemble mean - target);
* ``pred_power``: physical degree power of the members, mean over members; ``target_power``: of the target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .energy_score import energy_score_terms, loss_scaling, mode_weights
from .spectra import degree_power

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch

SCORE_TERMS = ("es_skill", "es_spread", "mse", "pred_power", "target_power")


def degree_scores(gen_hat: torch.Tensor, target_hat: torch.Tensor) -> dict[str, torch.Tensor]:
    """{term: (B, C, L)} for coefficients gen_hat (B, E, C, L, M) and target_hat (B, 1, C, L, M).

    The terms are ``SCORE_TERMS`` (see the module docstring for their definitions).

    Args:
        gen_hat: complex SHT coefficients of the ensemble members, shape (B, E, C, L, M).
        target_hat: complex SHT coefficients of the target, shape (B, 1, C, L, M).

    Returns:
        ``{"es_skill", "es_spread", "mse", "pred_power", "target_power"}``, each a real tensor (B, C, L).

    Raises:
        ValueError: the inputs are not complex 5-d tensors of matching shapes (target ensemble dim 1).
    """
    skill, spread = energy_score_terms(gen_hat, target_hat)
    n_l, n_m = skill.shape[-2:]
    w = mode_weights(n_l, n_m, device=skill.device, dtype=skill.dtype) / loss_scaling(n_l, n_m)
    return {"es_skill": (skill * w).sum(-1), "es_spread": (spread * w).sum(-1),
            "mse": degree_power(gen_hat.mean(dim=1) - target_hat[:, 0]),
            "pred_power": degree_power(gen_hat).mean(dim=1), "target_power": degree_power(target_hat[:, 0])}


def band_sums(values: Any, bands: Iterable[Any], *, total: bool = True) -> dict[str, Any]:
    """{band name: values summed over the band's degrees (inclusive)} for ``values`` (..., L).

    Works on numpy arrays and torch tensors.

    Args:
        values: per-degree values, shape (..., L), degree l at index l of the last axis.
        bands: :class:`~specprobe.spectral.stats.Band` objects (or anything with name, lo, hi; hi inclusive).
        total: add ``"total"``, every degree 0 .. L-1 (default True).

    Returns:
        ``{name: sum over degrees lo..hi}``, each of shape (...) and of ``values``' type, in the order of
        ``bands`` (then ``"total"``).

    Raises:
        ValueError: a band reaches beyond the largest degree L - 1.
    """
    n_l = values.shape[-1]
    spans = [(b.name, b.lo, b.hi) for b in bands] + ([("total", 0, n_l - 1)] if total else [])
    out = {}
    for name, lo, hi in spans:
        if hi >= n_l:
            raise ValueError(f"band {name}: degrees {lo}..{hi} exceed the largest degree {n_l - 1}")
        out[name] = values[..., lo:hi + 1].sum(-1)
    return out
