"""Series figure: high-band share of the gradient and per-band GSNR against epoch."""

from __future__ import annotations

from .figures import _COLORS, new_figure
from .tables import _num


def figure_series(summary: dict):
    rows = summary["rows"]
    use_epoch = all(r["epoch"] is not None for r in rows)
    x = [r["epoch"] if use_epoch else r["index"] for r in rows]
    fig, (ax_s, ax_g) = new_figure(1, 2, figsize=(12, 4.5))
    ax_s.plot(x, [r["high_band_share"] for r in rows], marker="o", color=_COLORS[0])
    ax_s.set_ylabel("high-band share of the filter gradient (baseline)")
    bands = list(rows[0]["gsnr_band_median"]) if rows and rows[0]["gsnr_band_median"] else []
    for i, band in enumerate(bands):
        ax_g.plot(x, [r["gsnr_band_median"].get(band) for r in rows], marker="o",
                  color=_COLORS[(i + 1) % len(_COLORS)], label=f"{band} band")
    if bands:
        ax_g.set_yscale("log")
        ax_g.legend(fontsize=8)
    else:
        ax_g.text(0.5, 0.5, "GSNR needs --n-samples >= 2", transform=ax_g.transAxes, ha="center")
    ax_g.set_ylabel("median GSNR per band (baseline)")
    for ax in (ax_s, ax_g):
        ax.set_xlabel("epoch" if use_epoch else "checkpoint index")
        ax.grid(True, alpha=0.25)
    fig.suptitle("small-scale gradient across training checkpoints", fontsize=10)
    return fig


def series_table(summary: dict):
    from rich.table import Table

    t = Table(title="Series: baseline filter gradient across checkpoints")
    for col in ("checkpoint", "epoch", "high-band share", "decline", "GSNR low", "GSNR high"):
        t.add_column(col)
    for r in summary["rows"]:
        gs = r["gsnr_band_median"]
        t.add_row(r["checkpoint"], str(r["epoch"]), _num(r["high_band_share"], "{:.4f}"),
                  _num(r["decline_ratio"], "{:.2f}"), _num(gs.get("low")), _num(gs.get("high")))
    return t
