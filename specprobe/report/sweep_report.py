"""Sweep table and figure."""

from __future__ import annotations

import numpy as np

from .figures import _COLORS, new_figure
from .tables import _num


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
    base = sweep["baseline"]
    t.add_row("base", "—", _num(base["decline_ratio"], "{:.2f}"), *(["1.00x", "1.00x"] * len(bands)),
              _num(base["gsnr_band_median"].get("low")), _num(base["gsnr_band_median"].get("high")))
    for s in sweep["settings"]:
        row = [f"{s['gamma']:g}", f"{s['eps_frac']:g}", _num(s["decline_ratio"], "{:.2f}")]
        for b in bands:
            row += [_num(s["measured_boost"][b], "{:.2f}x"), _num(s["predicted_boost"][b], "{:.2f}x")]
        row += [_num(s["gsnr_band_median"].get("low")), _num(s["gsnr_band_median"].get("high"))]
        t.add_row(*row)
    return t


def figure_sweep(sweep: dict):
    fig, (ax_g, ax_pm) = new_figure(1, 2, figsize=(12, 4.8))
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
    for ax in (ax_g, ax_pm):
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7)
    return fig
