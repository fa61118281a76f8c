"""Optimizer-aware statistics: what a loss change does to the update, not to the raw gradient.

From the per-element moments the probe already keeps (no extra backward pass), per variant:

- direction cosine: cos(E g_variant, E g_baseline) over the elements at degree l (per layer, and all
  layers pooled), and over each group of non-spectral parameters (encoder, decoder, MLPs, ...);
- steady-state Adam step: per element |E g| / (sqrt(E g^2) + eps), the step Adam takes (in units of
  the learning rate) once its moments have adapted to that loss, averaged over the degree's elements
  (AdamW's decoupled weight decay is not a gradient step and is left out);
- switch step (when the checkpoint holds Adam state): per element E g / (sqrt(v_hat) + eps), with the
  checkpoint's own bias-corrected second moment: the transient right after a run switches loss.

Why these: Adam divides each element's update by the running RMS of its gradient, so a per-degree
rescale of the gradient (most of what whitening does to high-degree filters) barely changes the
steady-state step; what can change is the direction, through the network mixing degrees.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..models.base import OptimizerSettings
from .sampling import StratifiedMean

FADE_FRACTION = 0.1

# Non-spectral parameter groups, first match wins. Names are matched after the family's wrapper
# prefixes (fme: "module.", "module.conditional_model.", "secondary_decoder.N.").
_GROUP_RULES = (
    ("encoder", r"(^|\.)encoder\."),
    ("decoder", r"(^|[._])decoder\."),  # secondary_decoder.N. too
    ("position embedding", r"pos_embed"),
    ("noise weights", r"noise|W_scale|W_bias"),  # fme NoiseConditionedSFNO: norms driven by the noise embedding
    ("norms", r"norm"),
    ("MLPs", r"(^|\.)mlp\."),
    ("skips", r"skip"),
    ("filter (other)", r"filter|global_conv|spectral")  # e.g. fme filter biases,
)

CONVENTIONS = {
    "direction_cosine": "per degree l: sum(a*b) / sqrt(sum(a^2) sum(b^2)) over every real element at degree l "
                        "(re/im separate) of a = E g (variant), b = E g (baseline), E = mean over probed samples; "
                        "'total' pools the elements of every per-degree parameter; 'groups': the same over each "
                        "group of non-spectral parameters ('all': every non-spectral parameter)",
    "adam_step": "per element |E g| / (sqrt(E g^2) + eps), eps the optimizer's; averaged over the elements at "
                 "degree l (per layer; 'total': every per-degree parameter). Steady-state Adam step in units of "
                 "the learning rate (beta1, beta2 -> 1, moments adapted to that loss). Note: with N samples, pure "
                 "noise gives about 1/sqrt(N), not 0",
    "adam_step_ratio": "variant's adam_step / baseline's, per degree (and per layer, per group)",
    "switch_step": "per element |E g| / (sqrt(v_hat) + eps), v_hat = exp_avg_sq / (1 - beta2^t) from the checkpoint's "
                   "optimizer state (t its step count): the step right after switching to that loss, before the "
                   "second moment adapts; averaged over the elements at degree l",
    "switch_fade": "the checkpoint's second moment keeps weight beta2^k after k steps: time constant "
                   "-1/ln(beta2) steps (weight 1/e), and ln(0.1)/ln(beta2) steps to weight 0.1",
}


def optimizer_settings_of(target) -> OptimizerSettings:
    get = getattr(target, "optimizer_settings", None)
    got = get() if get is not None else None
    return got if isinstance(got, OptimizerSettings) else OptimizerSettings()


def parameter_group(name: str) -> str:
    """Group of a non-spectral parameter, from its name (both families)."""
    short = re.sub(r"^(module\.)?(conditional_model\.)?", "", name)
    for group, pattern in _GROUP_RULES:
        if re.search(pattern, short):
            return group
    return "other"


def fade_steps(beta2: float, fraction: float = FADE_FRACTION) -> dict:
    """Steps until the checkpoint's second moment carries only ``fraction`` of its weight."""
    if not 0 < beta2 < 1:
        return {"beta2": beta2, "time_constant_steps": math.nan, "fraction": fraction, "steps_to_fraction": math.nan}
    return {"beta2": beta2, "time_constant_steps": -1.0 / math.log(beta2), "fraction": fraction,
            "steps_to_fraction": math.log(fraction) / math.log(beta2)}


class _Sums:
    """Per-degree (or one-bin) running sums: dot, |a|^2, |b|^2 (direction cosine), and the mean step
    (a :class:`StratifiedMean`: exact when every element keeps a second moment, else an estimate)."""

    def __init__(self, n: int):
        self.dot, self.aa, self.bb = np.zeros(n), np.zeros(n), np.zeros(n)
        self.steps = StratifiedMean(n)

    def add(self, products, rows_step, population: int | None = None, keep=None) -> None:
        """products: per-bin (a.b, a.a, b.b) arrays; rows_step: (bins, n) steps at n elements of each bin."""
        vals = [v * keep if keep is not None else v for v in products]
        n = len(vals[0])
        for mine, v in zip((self.dot, self.aa, self.bb), vals):
            mine[:n] += v
        self.steps.add(rows_step, rows_step.shape[1] if population is None else population, keep=keep)

    def cosine(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            den = np.sqrt(self.aa * self.bb)
            return np.where(den > 0, self.dot / np.where(den > 0, den, 1.0), math.nan)

    def mean_step(self) -> np.ndarray:
        return self.steps.mean()


def _bin_sums(t, axis):
    """Per-degree sums of ``t`` over every other axis (one bin for axis None), accumulated in float64.

    Reduces in place of the (degree, rest) copy: at ACE scale the optimizer view's products were the
    largest cost after the backward passes (1.1 s of a 13.6 s K = 8 probe at 45x90 embed 128)."""
    import torch

    if axis is None:
        return t.sum(dtype=torch.float64).reshape(1).cpu().numpy()
    axis %= t.ndim
    dims = [d for d in range(t.ndim) if d != axis]
    out = t.sum(dim=dims, dtype=torch.float64) if dims else t.to(torch.float64)
    return out.cpu().numpy()


def _rows(t, axis):
    return t.movedim(axis, 0).reshape(t.shape[axis], -1)


def _one_row(t):
    return t.reshape(1, -1)


def adam_step_elements(mean, mean_square, eps: float):
    """Steady-state Adam step per element: |E g| / (sqrt(E g^2) + eps)."""
    return mean.abs() / (mean_square.clamp_min(0).sqrt() + eps)


def switch_step_elements(mean, exp_avg_sq, step: int, beta2: float, eps: float):
    """Adam's step for gradient ``mean`` with the stored second moment: g / (sqrt(v / (1 - beta2^t)) + eps)."""
    v_hat = exp_avg_sq.double() / (1 - beta2 ** step)
    return mean / (v_hat.sqrt() + eps)


def optimizer_view(configs, params, moments, n_degrees: int, settings: OptimizerSettings,
                   state: dict | None = None) -> dict:
    """Direction cosines, steady-state Adam steps and (with ``state``) switch steps, per variant.

    ``moments[variant][i]`` is the GradientMoments of ``params[i]``; only its accessors are used.
    ``state``: {param name: {"exp_avg_sq": tensor (real view), "step", "beta2", "eps"}}.
    """
    import torch

    names = [c.name for c in configs]
    spec = {v: _Sums(n_degrees) for v in names}
    layer = {v: {} for v in names}
    groups = {v: {} for v in names}
    switch_total = {v: _Sums(n_degrees) for v in names} if state else None
    switch_layer = {v: {} for v in names}
    for i, p in enumerate(params):
        base_acc = moments["baseline"][i]
        if base_acc.count == 0:
            continue
        # Products in the accumulators' precision, sums in float64 (float32 models: ~1e-7 relative).
        base = base_acc.mean_native()
        axis = base_acc.degree_axis_of_real_view() if p.per_degree else None
        bb = _bin_sums(base * base, axis)
        st = (state or {}).get(p.name)
        for v in names:
            acc = moments[v][i]
            if acc.count == 0:
                continue  # a variant that did not differentiate this parameter (--other-params)
            mean = base if v == "baseline" else acc.mean_native()
            products = (bb, bb, bb) if v == "baseline" else (_bin_sums(mean * base, axis), _bin_sums(mean * mean, axis), bb)
            if p.per_degree:
                n_bins = len(bb)
                # The step needs E g^2: at every element, or at the sampled ones (then an estimate).
                rs, population = (acc.adam_step_rows(settings.eps) if acc.has_second_moment
                                  else (torch.full((n_bins, 1), math.nan, dtype=torch.float64), 1))
                full = n_bins == n_degrees
                keep = None
                if p.l0_bypassed:
                    keep = np.ones(n_bins)
                    keep[0] = 0.0  # zero by design: not part of the l = 0 statistics
                layer[v][p.name] = _Sums(n_bins)
                layer[v][p.name].add(products, rs, population)
                if full:
                    spec[v].add(products, rs, population, keep)
                if st is not None:
                    ru = _rows(switch_step_elements(acc.mean(), st["exp_avg_sq"], st["step"], st["beta2"], st["eps"]).abs(), axis)
                    switch_layer[v][p.name] = _Sums(n_bins)
                    switch_layer[v][p.name].add(products, ru)
                    if full:
                        switch_total[v].add(products, ru, keep=keep)
            else:
                mean64 = acc.mean()
                step = (adam_step_elements(mean64, acc.mean_square(), settings.eps) if acc.has_second_moment
                        else torch.full_like(mean64, math.nan))
                for g in (parameter_group(p.name), "all"):
                    groups[v].setdefault(g, _Sums(1)).add(products, _one_row(step))
    return _assemble(names, params, spec, layer, groups, switch_total, switch_layer, settings, state)


def _bypass(curve: np.ndarray, bypassed: bool) -> list:
    c = curve.astype(float).copy()
    if bypassed and len(c):
        c[0] = math.nan
    return c.tolist()


def _ratio_curve(a, b) -> list:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((b > 0) & np.isfinite(b), a / np.where(b > 0, b, 1.0), math.nan).tolist()


def _assemble(names, params, spec, layer, groups, switch_total, switch_layer, settings, state) -> dict:
    bypassed = {p.name: p.l0_bypassed for p in params if p.per_degree}
    cosine, adam, switch = {}, {}, {}
    for v in names:
        cosine[v] = {"total": spec[v].cosine().tolist(),
                     "layers": {n: _bypass(s.cosine(), bypassed[n]) for n, s in layer[v].items()},
                     "groups": {g: float(s.cosine()[0]) for g, s in groups[v].items()}}
        adam[v] = {"total": spec[v].mean_step().tolist(),
                   "layers": {n: _bypass(s.mean_step(), bypassed[n]) for n, s in layer[v].items()},
                   "groups": {g: float(s.mean_step()[0]) for g, s in groups[v].items()},
                   # 0 where every element keeps its second moment; else the sampling error (probing/sampling.py)
                   "stderr": {"total": spec[v].steps.stderr().tolist()}}
    for v in names:
        base = adam["baseline"]
        adam[v]["ratio"] = {"total": _ratio_curve(adam[v]["total"], base["total"]),
                            "layers": {n: _ratio_curve(c, base["layers"][n]) for n, c in adam[v]["layers"].items()},
                            "groups": {g: _ratio_curve([x], [base["groups"][g]])[0] for g, x in adam[v]["groups"].items()}}
    if state:
        for v in names:
            switch[v] = {"total": switch_total[v].mean_step().tolist(),
                         "layers": {n: _bypass(s.mean_step(), bypassed[n]) for n, s in switch_layer[v].items()}}
        for v in names:
            base = switch["baseline"]
            switch[v]["ratio"] = {"total": _ratio_curve(switch[v]["total"], base["total"]),
                                  "layers": {n: _ratio_curve(c, base["layers"][n]) for n, c in switch[v]["layers"].items()}}
        any_state = next(iter(state.values()))
        fade = fade_steps(any_state["beta2"])
        fade["checkpoint_step"] = any_state["step"]
        switch = {"variants": switch, "fade": fade}
    return {"direction_cosine_by_l": cosine, "adam_step_by_l": adam, "switch_step_by_l": switch,
            "optimizer": settings.to_dict()}


def band_summary(view: dict, bands, names) -> dict:
    """Per variant and band: mean over the band's degrees of the total curves, plus the layer range."""
    out = {}
    for v in names:
        if v == "baseline":
            continue
        cos = view["direction_cosine_by_l"][v]
        ratio = view["adam_step_by_l"][v]["ratio"]
        row = {"cosine": {}, "adam_step_ratio": {}, "adam_step_ratio_layer_range": {},
               "cosine_layer_range": {}, "cosine_groups": dict(cos["groups"]),
               "adam_step_ratio_groups": dict(ratio["groups"])}
        for b in bands:
            sl = slice(b.lo, b.hi + 1)
            row["cosine"][b.name] = _nanmean(cos["total"][sl])
            row["adam_step_ratio"][b.name] = _nanmean(ratio["total"][sl])
            row["cosine_layer_range"][b.name] = _range([_nanmean(c[sl]) for c in cos["layers"].values()])
            row["adam_step_ratio_layer_range"][b.name] = _range([_nanmean(c[sl]) for c in ratio["layers"].values()])
        sw = (view.get("switch_step_by_l") or {}).get("variants", {}).get(v)
        if sw:
            row["switch_step_ratio"] = {b.name: _nanmean(sw["ratio"]["total"][b.lo:b.hi + 1]) for b in bands}
        out[v] = row
    return out


def _nanmean(xs) -> float:
    a = np.asarray(xs, dtype=float)
    return float(np.nanmean(a)) if a.size and np.isfinite(a).any() else math.nan


def _range(xs) -> list:
    a = np.asarray(xs, dtype=float)
    a = a[np.isfinite(a)]
    return [float(a.min()), float(a.max())] if a.size else [math.nan, math.nan]
