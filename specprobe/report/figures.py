"""Figures from a ProbeResult (matplotlib, Agg): gradient by degree, whitening factors, GSNR."""

from __future__ import annotations

import io
import math

import numpy as np

from ..probing.result import EARTH_RADIUS_KM, ProbeResult
from .files import atomic_write_bytes

FORMATS = ("png", "svg", "pdf")
_COLORS = ["#222222", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize, squeeze: bool = True):
    """A Figure outside pyplot: no global backend switch (a notebook keeps its own), no figure
    manager to leak, and a notebook shows the returned Figure exactly as the CLI saves it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def _l_to_km(l):
    l = np.maximum(np.asarray(l, dtype=float), 0.5)
    return 2 * math.pi * EARTH_RADIUS_KM / np.sqrt(l * (l + 1))


def _km_to_l(km):
    k = 2 * math.pi * EARTH_RADIUS_KM / np.maximum(np.asarray(km, dtype=float), 1e-9)
    return (-1 + np.sqrt(1 + 4 * k * k)) / 2


def add_km_axis(ax) -> None:
    """Wavelength on top, ticked at a few degrees (km ticks crowd at low l otherwise)."""
    sec = ax.secondary_xaxis("top", functions=(_l_to_km, _km_to_l))
    lo, hi = ax.get_xlim()
    degrees = []
    for l in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512):
        crowded = degrees and ax.get_xscale() == "linear" and l - degrees[-1] < 0.1 * (hi - lo)
        if max(lo, 1) <= l <= hi and not crowded:
            degrees.append(l)
    kms = [float(_l_to_km(l)) for l in degrees]
    sec.set_xticks(kms, [f"{k:,.0f}" for k in kms], fontsize=7)
    sec.set_xlabel("wavelength (km, 2πR/√(l(l+1)))", fontsize=8)


def _shade_bands(ax, result: ProbeResult) -> None:
    for b in result.bands:
        if b["name"] in ("low", "high"):
            ax.axvspan(b["lo"] - 0.5, b["hi"] + 0.5, color="0.9", zorder=0)
            ax.text((b["lo"] + b["hi"]) / 2, 0.98, f"{b['name']} band", transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=8, color="0.4")


def plain_log_ticks(ax) -> None:
    """Ratios near 1 on a log axis: label ticks 0.9, 2, 4 rather than 9x10^-1."""
    from matplotlib.ticker import FormatStrFormatter

    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.tick_params(axis="y", which="minor", labelsize=7)


def figure_bytes(fig, fmt: str = "png") -> bytes:
    """The figure as the CLI writes it (no date in svg/pdf, so reruns are byte-identical)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=130, bbox_inches="tight", metadata={"Date": None} if fmt in ("svg", "pdf") else None)
    return buf.getvalue()


def save_figure(fig, path, fmt: str = "png"):
    return atomic_write_bytes(path, figure_bytes(fig, fmt))


def _title(result: ProbeResult) -> str:
    ck = result.provenance.get("checkpoint", {})
    name = "bundled shallow-water SFNO" if ck.get("bundled_default") else str(ck.get("path", ""))
    return f"{name} — {result.provenance.get('n_samples_probed', '?')} samples"


def figure_grad_by_l(result: ProbeResult):
    fig, ax = new_figure(figsize=(8, 5))
    l = np.asarray(result.degrees)
    _shade_bands(ax, result)
    for i, name in enumerate(result.variant_names):
        color = _COLORS[i % len(_COLORS)]
        for curve in result.grad_by_l[name]["layers"].values():
            c = np.asarray(curve, dtype=float)
            ax.plot(l[: len(c)], c, color=color, lw=0.6, alpha=0.35)
        total = np.asarray(result.grad_by_l[name]["total"], dtype=float)
        ratio = result.stats[name]["decline_ratio"]
        ax.plot(l, total, color=color, lw=2.2, label=f"{name} (total; low/high {ratio:.1f}x)")
    ax.set_yscale("log")
    ax.set_xlabel("spherical-harmonic degree l")
    ax.set_ylabel("|∂loss/∂w| per degree (L2 norm)")
    ax.set_xlim(0, l[-1])
    ax.set_title(_title(result) + " — thin lines: individual layers", fontsize=10, pad=28)
    add_km_axis(ax)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(True, which="both", alpha=0.25)
    return fig


def figure_whitening_factors(result: ProbeResult):
    variants = [v for v in result.variant_names if v in result.whitening_factor_by_l]
    fig, (ax_f, ax_p) = new_figure(1, 2, figsize=(12, 4.8))
    styles = ["-", "--", ":", "-."]
    # loss degrees (the loss SHT's), not filter degrees: they differ when the SFNO works on a coarser grid
    for ci, ch in enumerate(result.channels):
        color = _COLORS[(ci + 1) % len(_COLORS)]
        for vi, name in enumerate(variants):
            f = result.whitening_factor_by_l[name][ch]
            l = np.arange(len(f["mean"]))
            ax_f.plot(l, f["mean"], color=color, ls=styles[vi % len(styles)], lw=1.6,
                      label=f"{ch}, {name}" if len(variants) > 1 else ch)
            ax_f.fill_between(l, f["p10"], f["p90"], color=color, alpha=0.15, lw=0)
        target, prediction = (np.asarray(p[ch]) for p in (result.target_power_by_l, result.prediction_power_by_l))
        ax_p.plot(np.arange(1, len(target)), target[1:], color=color, lw=1.6, label=f"{ch} target")
        ax_p.plot(np.arange(1, len(prediction)), prediction[1:], color=color, lw=1, ls="--",
                  label=f"{ch} prediction")
    ax_f.axhline(1.0, color="0.5", lw=0.8)
    ax_f.set_yscale("log")
    ax_f.set_xlabel("degree l")
    ax_f.set_ylabel("whitening factor (mean; band: 10th–90th pct)")
    ax_f.set_title("per-sample whitening factor by degree" if variants else "no whitening variant probed", fontsize=10)
    if variants:
        ax_f.legend(fontsize=7)
    ax_p.set_xscale("log")
    ax_p.set_yscale("log")
    ax_p.set_xlabel("degree l")
    ax_p.set_ylabel("power per degree (normalised units², m>0 doubled)")
    ax_p.set_title("target and prediction power spectra (loss space)", fontsize=10)
    ax_p.legend(fontsize=7)
    for ax in (ax_f, ax_p):
        ax.grid(True, which="both", alpha=0.25)
    fig.suptitle(_title(result), fontsize=10)
    return fig


def figure_gsnr_by_l(result: ProbeResult):
    fig, ax = new_figure(figsize=(8, 5))
    l = np.asarray(result.degrees)
    _shade_bands(ax, result)
    plotted, banded, lines = False, False, []
    for i, name in enumerate(result.variant_names):
        g = np.asarray(result.gsnr_by_l.get(name) or [], dtype=float)
        if g.size:
            color = _COLORS[i % len(_COLORS)]
            ax.plot(l, g, color=color, lw=1.8, label=name)
            se = np.asarray(result.gsnr_stderr_by_l.get(name) or [], dtype=float)
            if se.size == g.size and np.nanmax(se, initial=0.0) > 0:  # sampled second moments: +-2 stderr
                ax.fill_between(l, np.maximum(g - 2 * se, 0.0), g + 2 * se, color=color, alpha=0.2, lw=0)
                banded = True
            lines.append(g[np.isfinite(g) & (g > 0)])
            plotted = True
    ax.set_xlabel("spherical-harmonic degree l")
    ax.set_ylabel("gradient SNR per element (mean² / variance over samples)")
    if plotted:
        ax.set_yscale("log")
        values = np.concatenate(lines)
        if banded and values.size:  # the axis follows the curves; a band reaching 0 runs off the bottom
            ax.set_ylim(values.min() / 4, values.max() * 4)
            ax.plot([], [], color="grey", alpha=0.4, lw=6, label="±2 standard errors (sampled elements)")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "GSNR needs --n-samples >= 2", transform=ax.transAxes, ha="center")
    ax.set_title(_title(result), fontsize=10, pad=28)
    add_km_axis(ax)
    ax.grid(True, which="both", alpha=0.25)
    return fig


def _ratio(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def figure_direction_by_l(result: ProbeResult):
    """What whitening changes under the optimizer: direction cosine and Adam step ratio (vs raw boost) by l."""
    switch = (result.switch_step_by_l or {}).get("variants") or {}
    ncols = 3 if switch else 2
    fig, axes = new_figure(1, ncols, figsize=(6.2 * ncols, 4.8))
    ax_c, ax_s = axes[0], axes[1]
    l = np.asarray(result.degrees)
    base_total = result.grad_by_l["baseline"]["total"]
    for i, name in enumerate(result.variant_names[1:], start=1):
        color = _COLORS[i % len(_COLORS)]
        cos = result.direction_cosine_by_l[name]
        for curve in cos["layers"].values():
            ax_c.plot(l[: len(curve)], np.asarray(curve, dtype=float), color=color, lw=0.6, alpha=0.35)
        others = cos.get("groups", {}).get("all")
        extra = f"; non-spectral weights {others:.2f}" if others is not None and math.isfinite(others) else ""
        ax_c.plot(l, np.asarray(cos["total"], dtype=float), color=color, lw=2.2, label=f"{name}{extra}")
        ratio = result.adam_step_by_l[name]["ratio"]
        for curve in ratio["layers"].values():
            ax_s.plot(l[: len(curve)], np.asarray(curve, dtype=float), color=color, lw=0.6, alpha=0.35)
        ax_s.plot(l, np.asarray(ratio["total"], dtype=float), color=color, lw=2.2, label=f"{name}: steady-state Adam step")
        ax_s.plot(l, _ratio(result.grad_by_l[name]["total"], base_total), color=color, lw=1.4, ls="--",
                  label=f"{name}: raw gradient")
        if switch and name in switch:
            ax_w = axes[2]
            ax_w.plot(l, np.asarray(switch[name]["ratio"]["total"], dtype=float), color=color, lw=2.2, label=name)
    ax_c.set_ylabel("cos(mean gradient, baseline's) per degree")
    ax_c.set_title("direction: 1 = same direction as the baseline (thin: layers)", fontsize=10)
    ax_c.set_ylim(min(0.0, ax_c.get_ylim()[0]), 1.02)
    ax_s.set_yscale("log")
    ax_s.set_ylabel("whitened / baseline")
    opt = (result.optimizer or {}).get("name", "unknown")
    ax_s.set_title(f"step size: raw gradient (dashed) vs steady-state Adam step\n(solid; thin: layers); trained with {opt}",
                   fontsize=9)
    ax_s.axhline(1.0, color="0.5", lw=0.8)
    if switch:
        fade = result.switch_step_by_l.get("fade", {})
        axes[2].set_yscale("log")
        axes[2].axhline(1.0, color="0.5", lw=0.8)
        axes[2].set_ylabel("switch step, whitened / baseline")
        axes[2].set_title(f"right after switching loss (checkpoint's Adam v̂); fades over "
                          f"~{fade.get('steps_to_fraction', float('nan')):,.0f} steps", fontsize=9)
    for ax in axes[1:]:
        plain_log_ticks(ax)
    for ax in axes:
        _shade_bands(ax, result)
        ax.set_xlabel("spherical-harmonic degree l")
        ax.set_xlim(0, l[-1])
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(_title(result), fontsize=10)
    return fig


def figure_adam_by_l(result: ProbeResult):
    """Optimizer's view (fme ckpt.tar): sqrt(v_hat) and the effective Adam step per degree, per layer."""
    params = result.adam_by_l.get("parameters", {})
    fig, (ax_v, ax_s) = new_figure(1, 2, figsize=(12, 4.8))
    fig.subplots_adjust(wspace=0.3)  # room for the right panel's long y label
    for i, (name, a) in enumerate(params.items()):
        color = _COLORS[(i + 1) % len(_COLORS)]
        short = name.replace("module.", "").replace(".filter", "")
        ax_v.plot(a["sqrt_v_hat"], color=color, lw=1.2, label=short)
        ax_s.plot(a["effective_step"], color=color, lw=1.2, label=short)
    ax_v.set_ylabel("sqrt(v̂) per degree (RMS gradient Adam has seen)")
    ax_s.set_ylabel("effective step |m̂| / (sqrt(v̂) + eps)")
    for ax in (ax_v, ax_s):
        ax.set_xlabel("degree l")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=6, ncol=2)
    step = next(iter(params.values()))["step"] if params else "?"
    fig.suptitle(f"Adam state in the checkpoint (step {step})", fontsize=10)
    return fig


def figure_predictability(result: ProbeResult):
    """R2 of the change by degree per channel, noise-dominated degrees marked, whitening factor on a second
    axis; right: where each variant's energy-score weight lands by degree (share of the total)."""
    p = result.predictability or {}
    chans = p.get("channels") or {}
    fig, (ax, ax_w) = new_figure(1, 2, figsize=(14, 4.8))
    fig.subplots_adjust(wspace=0.45)  # room for the left panel's second axis and the right panel's label
    thr = p.get("r2_threshold", 0.1)
    ax.axhline(thr, color="0.4", lw=0.8, ls=":")
    ax.axhline(0.0, color="0.6", lw=0.6)
    variants = [v for v in result.variant_names if v in result.whitening_factor_by_l]
    ax_f = ax.twinx() if variants else None
    for ci, (ch, c) in enumerate(chans.items()):
        color = _COLORS[(ci + 1) % len(_COLORS)]
        r2 = np.asarray(c.get("r2") or [], dtype=float)
        l = np.arange(r2.size)
        ax.plot(l[1:], r2[1:], color=color, lw=1.8, label=f"{ch}: R2")
        flagged = np.asarray(c.get("noise_dominated") or [], dtype=int)
        if flagged.size:
            ax.plot(flagged, np.clip(r2[flagged], -1, 1), "o", ms=3, color=color, alpha=0.7)
        if ax_f is not None:
            f = np.asarray(result.whitening_factor_by_l[variants[-1]][ch]["mean"], dtype=float)
            ax_f.plot(np.arange(f.size), f, color=color, lw=1, ls="--", label=f"{ch}: factor")
    ax.set_ylim(-1.0, 1.05)
    ax.set_xlabel("degree l (loss SHT)")
    ax.set_ylabel("R2 of the change from the input state (clipped at -1)")
    ax.set_title(f"predictability; dots: noise-dominated (R2 < {thr:g}, change >= {p.get('min_change', 0.1):g} of state)"
                 + (f"\ndashed, right axis: whitening factor of {variants[-1]}" if variants else ""), fontsize=9)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=7, loc="lower left")
    if ax_f is not None:
        ax_f.set_yscale("log")
        ax_f.set_ylabel("whitening factor (mean over samples)")
    shares = p.get("es_weight_share") or {}
    for vi, (name, per_ch) in enumerate((p.get("es_weight_by_l") or {}).items()):
        w = np.sum([np.asarray(v, dtype=float) for v in per_ch.values()], axis=0)
        total = np.nansum(w)
        if not total:
            continue
        ax_w.plot(np.arange(w.size), w / total, color=_COLORS[vi % len(_COLORS)], lw=1.6,
                  label=f"{name}: {100 * shares.get(name, math.nan):.0f}% on noise-dominated")
    noisy = sorted({l for c in chans.values() for l in (c.get("noise_dominated") or [])})
    for l in noisy:
        ax_w.axvspan(l - 0.5, l + 0.5, color="0.9", zorder=0, lw=0)
    ax_w.set_xlabel("degree l (loss SHT)")
    ax_w.set_ylabel("share of the energy-score loss per degree")
    ax_w.set_title("energy-score weight by degree (fme's per-degree contribution, all channels);\n"
                   "grey: degrees noise-dominated in some channel", fontsize=9)
    ax_w.grid(True, alpha=0.25)
    ax_w.legend(fontsize=7)
    fig.suptitle(_title(result), fontsize=10)
    return fig


# name -> (figure function, does this result have what it draws?). The CLI writes every available
# one as NAME.FMT; the Python API returns the same Figure from result.plot(NAME).
FIGURES = {
    "grad_by_l": (figure_grad_by_l, lambda r: True),
    "whitening_factors": (figure_whitening_factors, lambda r: True),
    "gsnr_by_l": (figure_gsnr_by_l, lambda r: True),
    "adam_by_l": (figure_adam_by_l, lambda r: bool(r.adam_by_l.get("parameters"))),
    "direction_by_l": (figure_direction_by_l, lambda r: len(r.direction_cosine_by_l) > 1),
    "predictability_by_l": (figure_predictability,
                            lambda r: any(c.get("has_reference") for c in ((r.predictability or {}).get("channels") or {}).values())),
}


def figure_names(result: ProbeResult) -> list[str]:
    return [name for name, (_, available) in FIGURES.items() if available(result)]


def write_figures(result: ProbeResult, out_dir, fmt: str = "png") -> list:
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
    from pathlib import Path

    paths = []
    for name in figure_names(result):
        paths.append(save_figure(FIGURES[name][0](result), Path(out_dir) / f"{name}.{fmt}", fmt))
    return paths
