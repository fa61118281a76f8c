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

from .energy_score import energy_score_terms, loss_scaling, mode_weights
from .spectra import degree_power

SCORE_TERMS = ("es_skill", "es_spread", "mse", "pred_power", "target_power")


def degree_scores(gen_hat, target_hat) -> dict:
    """{term: (B, C, L)} for coefficients gen_hat (B, E, C, L, M) and target_hat (B, 1, C, L, M)."""
    skill, spread = energy_score_terms(gen_hat, target_hat)
    n_l, n_m = skill.shape[-2:]
    w = mode_weights(n_l, n_m, device=skill.device, dtype=skill.dtype) / loss_scaling(n_l, n_m)
    return {"es_skill": (skill * w).sum(-1), "es_spread": (spread * w).sum(-1),
            "mse": degree_power(gen_hat.mean(dim=1) - target_hat[:, 0]),
            "pred_power": degree_power(gen_hat).mean(dim=1), "target_power": degree_power(target_hat[:, 0])}


def band_sums(values, bands, *, total: bool = True) -> dict:
    """{band name: values summed over the band's degrees (inclusive)} for ``values`` (..., L).

    ``bands``: :class:`~specprobe.spectral.stats.Band` objects (or anything with name, lo, hi);
    ``total`` adds ``"total"``, every degree 0 .. L-1. Works on numpy arrays and torch tensors.
    """
    n_l = values.shape[-1]
    spans = [(b.name, b.lo, b.hi) for b in bands] + ([("total", 0, n_l - 1)] if total else [])
    out = {}
    for name, lo, hi in spans:
        if hi >= n_l:
            raise ValueError(f"band {name}: degrees {lo}..{hi} exceed the largest degree {n_l - 1}")
        out[name] = values[..., lo:hi + 1].sum(-1)
    return out
