"""The probe engine: one forward per batch, one backward per loss variant, statistics per degree.

Family-agnostic: it sees only a :class:`~specprobe.models.base.ProbeTarget` and loss variants.
Per microbatch of samples it runs the model's training forward once, takes the loss SHT of the
generated and target fields once, and then, for each variant (baseline and whitened), backpropagates
each sample's loss separately from that shared graph (``retain_graph``) so per-sample gradients give
the gradient signal-to-noise ratio. The gradient of the mean loss over all samples is the mean of
the per-sample gradients, exactly what an optimizer would see for one batch of all of them.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SpecprobeError
from ..spectral import (
    POWER_CONVENTIONS,
    crps,
    curve_stats,
    degree_power,
    energy_score_terms,
    loss_scaling,
    mode_weights,
    parse_bands,
    to_spectral,
    weighted_loss_terms,
)
from ..spectral.predictability import (
    CONVENTIONS as PREDICTABILITY_CONVENTIONS,
)
from ..spectral.predictability import (
    SUM_KEYS,
    Predictability,
    band_r2,
    predictability_sums,
    weight_share,
)
from ..spectral.stats import band_mean
from .accumulate import GradientMoments, SampleCollector, percentile_summary, rss
from .devices import AUTO_DEVICE_ENV, auto_device, configure_cpu_threads, resolve_device  # noqa: F401 - public here too
from .memory import GraphSizer, check_fits
from .optstats import band_summary, optimizer_settings_of, optimizer_view
from .result import ProbeResult
from .sampling import ElementSample, StratifiedMean
from .settings import DEFAULT_MOMENT_ELEMENTS, LossSettings, ProbeSettings  # noqa: F401 - public here too

if TYPE_CHECKING:
    from ..models.base import ProbeTarget
    from .distributed import Shard


def run_probe(target: ProbeTarget, settings: ProbeSettings | None = None, *,
              data: str | os.PathLike[str] | None = None, progress: Callable[[int, int], None] | None = None,
              shard: Shard | None = None, **fields) -> ProbeResult:
    """Probe a loaded :class:`~specprobe.models.base.ProbeTarget`: per-degree gradient statistics of
    the baseline and each whitened loss. :func:`specprobe.probe` is the file-level entry point.

    Args:
        target: the loaded model (``specprobe.models.registry.load_target``).
        settings: what to measure; None builds one from ``fields`` (``run_probe(target, n_samples=4)``),
            so the keyword form and the object are the same thing, validated in one place.
        data: the family's data source; None: its default (the bundled sample, or synthetic fields).
        progress: called as ``progress(samples_done, n_samples)`` after each batch.
        shard: in distributed runs (:class:`specprobe.probing.distributed.Shard`), this process probes
            only the batches ``shard.takes(batch_index)`` accepts, then ``shard.reduce_probe`` sums the
            accumulators over processes, so the summary is that of all batches.
        **fields: :class:`ProbeSettings` fields, when ``settings`` is None.

    Returns:
        The :class:`ProbeResult` (per-degree gradients, GSNR, whitening factors, optimizer view, ...).
        Means, gradient norms, cosines and switch steps are exact; second moments are sampled as
        ``settings.moment_elements`` says (the same elements at every degree and in every variant).

    Raises:
        ValueError: a settings field out of range (or both ``settings`` and ``fields`` given).
        SpecprobeError: a model without per-degree parameters, or with NaN/Inf weights.
    """
    import torch

    if settings is None:
        settings = ProbeSettings(**fields)
    elif fields:
        raise ValueError(f"run_probe: give settings or fields ({', '.join(sorted(fields))}), not both")
    configs = settings.configs
    n_samples, n_ensemble, batch_size, seed = settings.n_samples, settings.n_ensemble, settings.batch_size, settings.seed
    loss, other_params, moment_elements = settings.loss, settings.other_params, settings.moment_elements
    params = target.parameters()
    spectral_params = [p for p in params if p.per_degree]
    if not spectral_params:
        raise SpecprobeError("the model has no per-degree (spectral) parameters to probe")
    bad = [p.name for p in params if not bool(torch.isfinite(p.tensor.detach()).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise SpecprobeError(f"the checkpoint has NaN or Inf weights in {shown}")
    n_degrees = max(p.n_degrees for p in spectral_params)
    band_list = parse_bands(settings.bands, n_degrees)
    # Per variant, the indices of the parameters it differentiates (the others' accumulators stay empty).
    spectral_only = [i for i, p in enumerate(params) if p.per_degree]
    wanted = {c.name: list(range(len(params))) if other_params == "all" or (other_params == "baseline" and k == 0)
              else spectral_only for k, c in enumerate(configs)}
    inputs = [p.tensor for p in params]

    device = params[0].tensor.device
    samples = element_samples(params, moment_elements, seed)
    sizes = dict(device=device, params=params, n_variants=len(configs), batch_size=batch_size, n_ensemble=n_ensemble,
                 samples=samples)
    check_fits(**sizes)  # accumulators and gradients are known before any forward
    moments = {c.name: [] for c in configs}  # filled once the first graph's size has been checked

    def after_first_forward(graph_bytes: int) -> None:
        check_fits(**sizes, graph_bytes=graph_bytes)
        for c in configs:
            moments[c.name] = _new_moments(params, wanted[c.name], samples)

    out_grad_sq = {c.name: None for c in configs}
    factors = {c.name: SampleCollector() for c in configs if c.kind != "none"}
    target_power, pred_power = SampleCollector(), SampleCollector()
    skill_rows, spread_rows = SampleCollector(), SampleCollector()
    loss_sums = {c.name: 0.0 for c in configs}
    n_done = 0
    started = time.perf_counter()

    acc = Accumulators(moments, out_grad_sq, factors, target_power, pred_power, skill_rows, spread_rows, loss_sums,
                        extra_collectors={"predictability": SampleCollector(),
                                          **{f"es_by_l:{c.name}": SampleCollector() for c in configs}})
    for batch_index, batch in enumerate(target.batches(data, n_samples=n_samples, batch_size=batch_size, seed=seed)):
        if shard is not None and not shard.takes(batch_index):
            continue
        # One function call per batch: when it returns, every tensor of this batch's graph is
        # unreachable, so the next forward never runs while the previous graph is still alive
        # (it was, and peak memory held two graphs).
        n_done += _probe_batch(target, batch, batch_index, configs, params, inputs, acc, n_ensemble=n_ensemble,
                               seed=seed, loss=loss, wanted=wanted,
                               after_forward=after_first_forward if n_done == 0 else None)
        del batch
        if progress is not None:
            progress(n_done, n_samples)
    if n_done == 0:  # no batch here: empty accumulators, as before the lazy allocation
        for c in configs:
            moments[c.name] = _new_moments(params, wanted[c.name], samples)
    if shard is not None:
        n_done = shard.reduce_probe(acc, n_done)

    # Optimizer-aware statistics from the same moments: no extra backward pass.
    optimizer = optimizer_settings_of(target)
    state_of = getattr(target, "optimizer_state", None)
    state = state_of() if state_of is not None and optimizer.adaptive else None
    opt_view = optimizer_view(configs, params, moments, n_degrees, optimizer, state)
    return _summarise(target, configs, params, acc, n_done, band_list, n_degrees,
                      elapsed=time.perf_counter() - started, loss=loss, opt_view=opt_view,
                      sampling=_sampling_provenance(params, samples, moment_elements, seed),
                      predictability=_predictability(acc, configs, list(target.channel_names), band_list, n_ensemble,
                                                     n_done, r2_threshold=settings.r2_threshold,
                                                     min_change=settings.min_change,
                                                     reference=getattr(target, "persistence", None) is not None))


def element_samples(params, per_degree: int | None, seed: int) -> dict:
    """{parameter index: ElementSample} for the per-degree parameters with more than ``per_degree``
    elements per degree (their second moments are sampled); empty for None (exact everywhere)."""
    import torch

    out = {}
    if per_degree is None:
        return out
    for i, p in enumerate(params):
        if not p.per_degree:
            continue
        real = torch.view_as_real(p.tensor.detach()) if p.tensor.is_complex() else p.tensor
        axis = p.degree_axis - 1 if p.tensor.is_complex() and p.degree_axis < 0 else p.degree_axis
        sample = ElementSample(real.shape, axis, per_degree, seed=seed * 1_000_003 + i)
        if not sample.complete:
            out[i] = sample.to(p.tensor.device)
    return out


def _sampling_provenance(params, samples: dict, per_degree: int | None, seed: int) -> dict:
    return {"elements_per_degree": per_degree, "seed": seed,
            "sampled_parameters": {params[i].name: {"sampled": s.n, "of": s.population} for i, s in samples.items()},
            "estimator": "stratified ratio estimator over (parameter, degree) strata, sampling without replacement "
                         "(specprobe/probing/sampling.py); standard errors in gsnr_stderr_by_l and "
                         "adam_step_by_l[variant]['stderr']"}


def _new_moments(params, wanted: list[int], samples: dict) -> list:
    """Per parameter: mean and spread of the per-sample gradients where the variant differentiates it.

    Non-spectral parameters keep their spread too: the optimizer view reports their steady-state Adam
    step (shared weights are where whitening re-aims updates most); they are a small share of an SFNO's
    parameters next to the per-degree filters. Large per-degree parameters keep it at ``samples``."""
    keep = set(wanted)
    return [GradientMoments(p.tensor, p.degree_axis, second_moment=i in keep, sample=samples.get(i))
            for i, p in enumerate(params)]


@dataclass
class Accumulators:
    """Everything a probe sums over samples: per-variant gradient moments, output-gradient power,
    loss sums, and per-batch rows (whitening factors, spectra, skill/spread, predictability).

    Distributed runs sum it over ranks (:meth:`specprobe.probing.distributed.Shard.reduce_probe`):
    the moments through their own reducible state, the rows through :meth:`row_collectors`."""

    moments: dict
    out_grad_sq: dict
    factors: dict
    target_power: SampleCollector
    pred_power: SampleCollector
    skill_rows: SampleCollector
    spread_rows: SampleCollector
    loss_sums: dict
    # One row per batch each, summed over ranks like the collectors above (distributed._collectors):
    # "predictability" (1, 5, C, L) powers (spectral.predictability.SUM_KEYS), "es_by_l:<variant>" (1, C, L)
    # the sum over the batch's samples of fme's per-degree energy-score contribution.
    extra_collectors: dict = None

    def row_collectors(self) -> dict:
        """{name: SampleCollector}: every per-batch row collector, by a name that is the same on every rank."""
        cols = {"target_power": self.target_power, "pred_power": self.pred_power, "skill_rows": self.skill_rows,
                "spread_rows": self.spread_rows}
        cols.update({f"factor:{k}": v for k, v in self.factors.items()})
        cols.update({f"extra:{k}": v for k, v in (self.extra_collectors or {}).items()})
        return cols

    # The two halves of a distributed reduction (specprobe.probing.distributed.Shard.reduce_probe): the
    # moments sum through their own reducible state, everything else through summable / load_summed.
    def all_moments(self) -> list[GradientMoments]:
        """Every gradient-moment accumulator, in an order that is the same on every rank."""
        return [m for per_param in self.moments.values() for m in per_param]

    def summable(self) -> dict:
        """This process's loss sums, output-gradient power (on the CPU) and per-batch rows, to be gathered."""
        return {"loss_sums": dict(self.loss_sums),
                "out_grad_sq": {k: None if v is None else v.cpu() for k, v in self.out_grad_sq.items()},
                "rows": {name: col.rows for name, col in self.row_collectors().items()}}

    def load_summed(self, parts: list[dict], order: list[tuple[int, int]]) -> None:
        """Replace this process's state by the sum of every process's :meth:`summable` ``parts``.

        Args:
            parts: one :meth:`summable` dict per process, by rank.
            order: (rank, k) of each batch in batch order: the k-th row of that rank's collectors.
        """
        for name in self.loss_sums:
            self.loss_sums[name] = sum(p["loss_sums"][name] for p in parts)
        for name in self.out_grad_sq:
            tensors = [p["out_grad_sq"][name] for p in parts if p["out_grad_sq"][name] is not None]
            self.out_grad_sq[name] = sum(tensors[1:], tensors[0].clone()) if tensors else None
        for name, col in self.row_collectors().items():
            col.rows = [parts[r]["rows"][name][k] for r, k in order]


def loss_steps(target, batch, *, n_ensemble: int, seed: int) -> list[tuple]:
    """[(gen, target, step weight)]: the target's training rollout (fme ``loss_steps``), else its one
    forward with weight 1. The probed loss is the step-weighted sum of the steps' losses."""
    steps = getattr(target, "loss_steps", None)
    if steps is not None:
        return steps(batch, n_ensemble=n_ensemble, seed=seed)
    gen, tgt = target.forward(batch, n_ensemble=n_ensemble, seed=seed)
    return [(gen, tgt, 1.0)]


def _probe_batch(target, batch, batch_index, configs, params, inputs, acc: Accumulators, *, n_ensemble, seed,
                 loss, wanted, after_forward=None) -> int:
    """One forward (rollout), the loss SHT once per step, per variant one backward per sample; returns the batch size.

    Diagnostics (powers, skill/spread, whitening factors) describe the last loss step of a rollout.
    ``after_forward(graph_bytes)``, if given, is called before any backward with the memory the forward
    left allocated, its graph (the memory check of the first batch).
    """
    import torch

    steps = []
    with GraphSizer(params[0].tensor.device) as sizer:
        for gen, tgt, weight in loss_steps(target, batch, n_ensemble=n_ensemble, seed=seed * 1_000_003 + batch_index):
            gen_hat = to_spectral(gen, grid=target.loss_grid)
            tgt_hat = to_spectral(tgt, grid=target.loss_grid)
            skill, spread = energy_score_terms(gen_hat, tgt_hat)
            es = skill - spread  # per mode; shared by every variant (whitening only reweights it)
            crps_term = crps(gen, tgt, alpha=loss.crps_alpha).flatten(2).mean(-1) if loss.crps_weight > 0 else None
            steps.append((weight, gen_hat, tgt_hat, es, crps_term))
    if after_forward is not None:
        after_forward(sizer.bytes)
    b = gen.shape[0]
    with torch.no_grad():
        acc.target_power.add(degree_power(tgt_hat[:, 0]))
        acc.pred_power.add(degree_power(gen_hat).mean(dim=1))
        w = mode_weights(*skill.shape[-2:], device=skill.device, dtype=skill.dtype) / loss_scaling(*skill.shape[-2:])
        acc.skill_rows.add((skill * w).sum(-1))
        acc.spread_rows.add((spread * w).sum(-1))
        if acc.extra_collectors is not None:
            ref = persistence_of(target, batch)
            ref_hat = None if ref is None else to_spectral(ref.to(tgt_hat.device, gen.dtype), grid=target.loss_grid)
            sums = predictability_sums(gen_hat, tgt_hat, ref_hat)
            acc.extra_collectors["predictability"].add(torch.stack([sums[k] for k in SUM_KEYS])[None])
    gen_hats = [step[1] for step in steps]
    for k, cfg in enumerate(configs):
        whitening = cfg.build()
        per_sample = None
        for weight, gen_hat, tgt_hat, es, crps_term in steps:
            factor = whitening.factor(tgt_hat) if whitening is not None else None
            terms = weighted_loss_terms(es, factor=factor, weight=loss.energy_score_weight)
            step_loss = terms.per_sample_channel  # (B, C)
            if crps_term is not None:
                step_loss = step_loss + loss.crps_weight * crps_term
            step_loss = step_loss.mean(dim=1)  # each sample's loss (mean over channels, as fme)
            per_sample = weight * step_loss if per_sample is None else per_sample + weight * step_loss
        if factor is not None:
            acc.factors[cfg.name].add(factor[..., 0])
        if acc.extra_collectors is not None:  # the last loss step's, as the other diagnostics
            with torch.no_grad():
                acc.extra_collectors[f"es_by_l:{cfg.name}"].add(terms.per_degree.detach()[None] * b)
        acc.loss_sums[cfg.name] += float(per_sample.detach().sum())
        for s in range(b):
            last = k == len(configs) - 1 and s == b - 1  # the graph's buffers go with the last backward
            idx = wanted[cfg.name]
            grads = torch.autograd.grad(per_sample[s], [inputs[i] for i in idx] + gen_hats, retain_graph=not last,
                                        allow_unused=True)
            for i, g in zip(idx, grads[:len(idx)]):
                acc.moments[cfg.name][i].add(g if g is not None else torch.zeros_like(params[i].tensor))
            sq = torch.zeros(gen_hats[0].shape[-2], dtype=torch.float64, device=gen_hats[0].device)
            for g_hat in grads[len(idx):]:
                if g_hat is not None:
                    sq = sq + (g_hat.abs() ** 2).sum(dim=(0, 1, 2, 4)).double()
            acc.out_grad_sq[cfg.name] = sq if acc.out_grad_sq[cfg.name] is None else acc.out_grad_sq[cfg.name] + sq
            del grads  # else the next backward's gradients are allocated while these still live
            g = g_hat = None
    return b


def persistence_of(target, batch):
    """The target's persistence reference (B, 1, C, H, W) in loss space, or None (no such method / none)."""
    method = getattr(target, "persistence", None)
    return None if method is None else method(batch)


def _predictability(acc, configs, channels, band_list, n_ensemble, n_done, *, r2_threshold, min_change,
                    reference: bool) -> dict:
    """Predictability by degree and the energy-score weight on noise-dominated degrees (result.predictability)."""
    rows = acc.extra_collectors["predictability"].rows if acc.extra_collectors else []
    if not rows or n_done == 0:
        return {}
    total = np.concatenate(rows, axis=0).sum(axis=0)  # (5, C, L)
    sums = dict(zip(SUM_KEYS, total))
    pred = Predictability.from_sums(sums, n_ensemble=n_ensemble, r2_threshold=r2_threshold, min_change=min_change)
    out = pred.to_dict(channels)
    out["reference"] = ("persistence: the input state of the probed step (target.persistence)" if reference
                        else "none (the model family gives no persistence reference)")
    out["bands"] = {}
    for i, ch in enumerate(channels):
        out["bands"][ch] = {}
        for b in band_list:
            sl = slice(b.lo, b.hi + 1)
            err, spr = float(sums["error"][i, sl].sum()), float(sums["spread"][i, sl].sum())
            ss = math.sqrt((1 + 1 / n_ensemble) * spr / err) if n_ensemble > 1 and err > 0 else math.nan
            out["bands"][ch][b.name] = {"r2": band_r2(sums, i, b.lo, b.hi, n_ensemble=n_ensemble), "spread_skill": ss,
                                        "noise_dominated": int(pred.noise_dominated[i, sl].sum()),
                                        "degrees": b.hi - b.lo + 1}
    out["es_weight_by_l"], out["es_weight_share"] = {}, {}
    for cfg in configs:
        es_rows = acc.extra_collectors.get(f"es_by_l:{cfg.name}")
        if es_rows is None or not es_rows.rows:
            continue
        per_degree = np.concatenate(es_rows.rows, axis=0).sum(axis=0) / n_done  # (C, L): fme's per_degree, mean
        out["es_weight_by_l"][cfg.name] = {ch: per_degree[i].tolist() for i, ch in enumerate(channels)}
        out["es_weight_share"][cfg.name] = weight_share(per_degree, pred.noise_dominated)
    out["noise_dominated_count"] = int(pred.noise_dominated.sum())
    out["conventions"] = PREDICTABILITY_CONVENTIONS
    return out


def _summarise(target, configs, params, sums: Accumulators, n_done, band_list, n_degrees, *, elapsed, loss,
               opt_view, sampling, predictability=None) -> ProbeResult:
    """The ProbeResult of the accumulated batches (``sums``: the accumulators over every probed sample)."""
    channels = list(target.channel_names)
    moments, out_grad_sq, loss_sums = sums.moments, sums.out_grad_sq, sums.loss_sums
    degrees = list(range(n_degrees))
    grad_by_l, gsnr_by_l, layer_stats, other, nonfinite, stats, out_grad = {}, {}, {}, {}, {}, {}, {}
    gsnr_stderr = {}
    for cfg in configs:
        name = cfg.name
        layers, curves_full, gsnr_mean = {}, [], StratifiedMean(n_degrees)
        other[name], nonfinite[name], layer_stats[name] = {}, {}, {}
        for p, acc in zip(params, moments[name]):
            if acc.nonfinite:
                nonfinite[name][p.name] = acc.nonfinite
            if not p.per_degree:
                if acc.count:  # else not differentiated for this variant (other_params)
                    other[name][p.name] = acc.norm_of_mean()
                continue
            curve = acc.mean_grad_by_degree()
            if len(curve) == n_degrees:
                curves_full.append(curve)
                rows = acc.gsnr_rows()
                if rows is not None:
                    gsnr_mean.add(rows[0], rows[2], z_rows=rows[1])
            shown = curve.astype(float).copy()
            if p.l0_bypassed:
                shown[0] = math.nan  # zero by design, not a finding
            layers[p.name] = shown.tolist()
            s = curve_stats(shown, band_list)
            layer_stats[name][p.name] = {"decline_ratio": s["decline_ratio"], "spearman_rho": s["spearman_rho"]}
        total = rss(curves_full)
        if all(p.l0_bypassed for p in params if p.per_degree and p.n_degrees == n_degrees):
            total[0] = math.nan
        grad_by_l[name] = {"total": total.tolist(), "layers": layers}
        gsnr = gsnr_mean.mean() if n_done >= 2 else None
        gsnr_by_l[name] = gsnr.tolist() if gsnr is not None else []
        gsnr_stderr[name] = gsnr_mean.stderr().tolist() if gsnr is not None else []
        out_grad[name] = (np.sqrt(out_grad_sq[name].cpu().numpy()) / max(n_done, 1)).tolist()
        st = curve_stats(total, band_list)
        st["gsnr_band_median"] = ({b.name: float(np.nanmedian(gsnr[b.lo:b.hi + 1])) if np.isfinite(gsnr[b.lo:b.hi + 1]).any() else math.nan
                                   for b in band_list} if gsnr is not None else {})
        st["loss"] = loss_sums[name] / max(n_done, 1)
        stats[name] = st
    base = grad_by_l["baseline"]["total"]
    stats["boost"] = {
        cfg.name: {b.name: _ratio(band_mean(grad_by_l[cfg.name]["total"], b), band_mean(base, b)) for b in band_list}
        for cfg in configs if cfg.kind != "none"
    }
    stats["optimizer_view"] = {"optimizer": opt_view["optimizer"],
                               "variants": band_summary(opt_view, band_list, [c.name for c in configs])}
    if opt_view["switch_step_by_l"]:
        stats["optimizer_view"]["switch_fade"] = opt_view["switch_step_by_l"]["fade"]
    factor_by_l = {}
    for name, col in sums.factors.items():
        arr = col.stack()  # (N, C, L)
        factor_by_l[name] = {ch: percentile_summary(arr[:, i]) for i, ch in enumerate(channels)}
    tp, pp = sums.target_power.stack(), sums.pred_power.stack()
    sk, sd = sums.skill_rows.stack(), sums.spread_rows.stack()
    provenance = {}
    provenance.update({
        "family": target.family,
        "grid": {"nlat": target.nlat, "nlon": target.nlon, "data_grid": target.data_grid},
        "lmax": n_degrees,
        "sht": {"loss_grid": target.loss_grid, "library": "torch-harmonics RealSHT", "norm": "ortho",
                "csphase": True, "lmax": "nlat", "mmax": "nlon // 2 + 1"},
        "power_convention": {"name": "physical", "definition": POWER_CONVENTIONS["physical"]},
        "loss": {"type": "EnsembleLoss", "crps_weight": loss.crps_weight, "energy_score_weight": loss.energy_score_weight,
                 "almost_fair_crps_alpha": loss.crps_alpha, "energy_score": "fair, beta=1, fme 2026.10.0 weighting"},
        "spectral_parameters": [p.describe() for p in params if p.per_degree],
        "n_samples_probed": n_done,
        "elapsed_s": round(elapsed, 3),
        "moment_sampling": sampling,
    })
    return ProbeResult(
        provenance=provenance,
        degrees=degrees,
        channels=channels,
        bands=[{"name": b.name, "lo": b.lo, "hi": b.hi} for b in band_list],
        variants=[{"name": c.name, "whitening": c.to_dict()} for c in configs],
        grad_by_l=grad_by_l,
        gsnr_by_l=gsnr_by_l,
        gsnr_stderr_by_l=gsnr_stderr,
        output_grad_by_l=out_grad,
        whitening_factor_by_l=factor_by_l,
        target_power_by_l={ch: tp[:, i].mean(axis=0).tolist() for i, ch in enumerate(channels)},
        prediction_power_by_l={ch: pp[:, i].mean(axis=0).tolist() for i, ch in enumerate(channels)},
        es_skill_spread_by_l={ch: {"skill": sk[:, i].mean(axis=0).tolist(), "spread": sd[:, i].mean(axis=0).tolist()}
                              for i, ch in enumerate(channels)},
        stats=stats,
        layer_stats=layer_stats,
        other_params=other,
        loss={c.name: stats[c.name]["loss"] for c in configs},
        nonfinite={k: v for k, v in nonfinite.items() if v},
        optimizer=opt_view["optimizer"],
        direction_cosine_by_l=opt_view["direction_cosine_by_l"],
        adam_step_by_l=opt_view["adam_step_by_l"],
        switch_step_by_l=opt_view["switch_step_by_l"],
        predictability=predictability or {},
    )


def _ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(b) and b != 0 else math.nan
