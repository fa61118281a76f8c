"""Sweep table and figure."""

from __future__ import annotations

import numpy as np

from .figures import _COLORS, new_figure
from .tables import _num, _pct


def sweep_table(sweep: dict):
    from rich.table import Table

    bands = [b["name"] for b in sweep["bands"]]
    t = Table(title="Whitening sweep: measured vs predicted boost of the filter gradient per band")
    for col in ("gamma", "eps", "decline"):
        t.add_column(col, justify="right")
    for b in bands:
        t.add_column(f"{b}\nmeas.", justify="right")
        t.add_column(f"{b}\npred.", justify="right")
    for b in ("low", "high"):
        t.add_column(f"GSNR\n{b}", justify="right")
    shares = noise_weight_shares(sweep)
    if shares:
        t.add_column("ES weight on\nnoise-dominated", justify="right")
    base = sweep["baseline"]
    t.add_row("base", "—", _num(base["decline_ratio"], "{:.2f}"), *(["1.00x", "1.00x"] * len(bands)),
              _num(base["gsnr_band_median"].get("low")), _num(base["gsnr_band_median"].get("high")),
              *([_pct(shares.get("baseline"))] if shares else []))
    for s in sweep["settings"]:
        row = [f"{s['gamma']:g}", f"{s['eps_frac']:g}", _num(s["decline_ratio"], "{:.2f}")]
        for b in bands:
            row += [_num(s["measured_boost"][b], "{:.2f}x"), _num(s["predicted_boost"][b], "{:.2f}x")]
        row += [_num(s["gsnr_band_median"].get("low")), _num(s["gsnr_band_median"].get("high"))]
        if shares:
            row.append(_pct(shares.get(s["name"])))
        t.add_row(*row)
    if shares:
        cols = _predictability_of(sweep)
        t.caption = (f"ES weight on noise-dominated degrees: share of fme's per-degree energy-score contribution on "
                     f"the {cols.get('noise_dominated')} (channel, degree) pairs where the model's R2 of the change is "
                     f"< {cols.get('r2_threshold'):g} (and the change >= {cols.get('min_change'):g} of the state)")
    return t


def _predictability_of(sweep: dict) -> dict:
    from ..spectral.predictability import summary_columns

    return summary_columns((sweep.get("probe") or {}).get("predictability"))


def noise_weight_shares(sweep: dict) -> dict:
    """{variant name: share of the energy-score weight on noise-dominated degrees}; empty for older sweeps."""
    return _predictability_of(sweep).get("es_weight_share") or {}


def sweep_optimizer_table(sweep: dict):
    """Per setting, what changes under the training optimizer: Adam step ratio and direction cosine per band."""
    from rich.table import Table

    bands = [b["name"] for b in sweep["bands"]]
    name = (sweep.get("optimizer") or {}).get("name", "unknown")
    t = Table(title=f"Under the optimizer ({name}): raw boost vs steady-state Adam step ratio vs direction cosine")
    for col in ("gamma", "eps", "raw high", *(f"Adam {b}" for b in bands), *(f"cos {b}" for b in bands),
                "cos non-spectral"):
        t.add_column(col, justify="right")
    for s in sweep["settings"]:
        if "adam_step_ratio" not in s:
            continue
        t.add_row(f"{s['gamma']:g}", f"{s['eps_frac']:g}", _num(s["measured_boost"]["high"], "{:.2f}x"),
                  *(_num(s["adam_step_ratio"][b], "{:.2f}x") for b in bands),
                  *(_num(s["direction_cosine"][b], "{:.2f}") for b in bands),
                  _num(s.get("direction_cosine_non_spectral"), "{:.2f}"))
    return t


def sweep_report(sweep: dict):
    """What the CLI prints (a notebook displays it): the sweep table, and the optimizer table when the
    settings carry its statistics."""
    from rich.text import Text

    from ..probing.result import ProbeResult
    from .tables import _report_class, predictability_lines

    tables = [sweep_table(sweep)]
    if any("adam_step_ratio" in s for s in sweep["settings"]):
        tables.append(sweep_optimizer_table(sweep))
    probe = sweep.get("probe")
    if isinstance(probe, dict) and (probe.get("predictability") or {}).get("channels"):
        try:
            lines = predictability_lines(ProbeResult.from_dict(probe))
        except (ValueError, TypeError, KeyError):
            lines = []
        tables += [Text(line, style="bold") for line in lines]
    return _report_class()(*tables)


def figure_sweep(sweep: dict):
    has_opt = any("adam_step_ratio" in s for s in sweep["settings"])
    fig, axes = new_figure(1, 3 if has_opt else 2, figsize=(18 if has_opt else 12, 4.8))
    ax_g, ax_pm = axes[0], axes[1]
    bands = [b["name"] for b in sweep["bands"]]
    eps_values = sorted({s["eps_frac"] for s in sweep["settings"]})
    styles = ["-", "--", ":", "-."]
    for bi, band in enumerate(bands):
        color = _COLORS[(bi + 1) % len(_COLORS)]
        for ei, eps in enumerate(eps_values):
            rows = sorted((s for s in sweep["settings"] if s["eps_frac"] == eps), key=lambda s: s["gamma"])
            g = [0.0] + [s["gamma"] for s in rows]
            ax_g.plot(g, [1.0] + [s["measured_boost"][band] for s in rows], color=color, ls=styles[ei % 4],
                      marker="o", label=f"{band} band, eps_frac={eps:g}")
        pts = [(s["predicted_boost"][band], s["measured_boost"][band]) for s in sweep["settings"]]
        ax_pm.scatter(*zip(*pts), color=color, label=f"{band} band")
    allv = [v for s in sweep["settings"] for b in bands for v in (s["predicted_boost"][b], s["measured_boost"][b])
            if v is not None and np.isfinite(v) and v > 0]
    if allv:
        lo, hi = min(allv) / 1.2, max(allv) * 1.2
        ax_pm.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, label="measured = predicted")
        ax_pm.set_xscale("log")
        ax_pm.set_yscale("log")
    ax_g.axhline(1.0, color="0.5", lw=0.8)
    ax_g.set_xlabel("whitening exponent gamma (0 = baseline)")
    ax_g.set_ylabel("filter-gradient boost (whitened / baseline)")
    ax_g.set_yscale("log")
    ax_g.set_title("measured boost per band", fontsize=10)
    ax_pm.set_xlabel("predicted boost (whitening factor, band mean)")
    ax_pm.set_ylabel("measured boost (filter gradient)")
    ax_pm.set_title("predicted from the target spectrum vs measured", fontsize=10)
    if has_opt:
        _plot_optimizer_view(axes[2], sweep, bands)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7)
    return fig


def _plot_optimizer_view(ax, sweep: dict, bands: list[str]) -> None:
    """Per gamma (first eps_frac): direction cosine per band and non-spectral, steady-state Adam step ratio."""
    eps0 = min(s["eps_frac"] for s in sweep["settings"])
    rows = sorted((s for s in sweep["settings"] if s["eps_frac"] == eps0), key=lambda s: s["gamma"])
    g = [0.0] + [s["gamma"] for s in rows]
    for bi, band in enumerate(bands):
        color = _COLORS[(bi + 1) % len(_COLORS)]
        ax.plot(g, [1.0] + [s["direction_cosine"][band] for s in rows], color=color, marker="o",
                label=f"direction cos, {band} band")
        ax.plot(g, [1.0] + [s["adam_step_ratio"][band] for s in rows], color=color, marker="s", ls="--",
                label=f"Adam step ratio, {band} band")
    other = [s.get("direction_cosine_non_spectral") for s in rows]
    if any(v is not None for v in other):
        ax.plot(g, [1.0] + [np.nan if v is None else v for v in other], color=_COLORS[0], marker="o",
                label="direction cos, non-spectral weights")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xlabel("whitening exponent gamma (0 = baseline)")
    ax.set_ylabel("cosine / step ratio vs baseline")
    ax.set_title(f"under {(sweep.get('optimizer') or {}).get('name', 'Adam')}: direction and steady-state "
                 f"Adam step (eps_frac={eps0:g})", fontsize=10)
