"""Series figure and table: high-band share of the gradient, per-band GSNR and the optimizer view against epoch."""

from __future__ import annotations

from .figures import _COLORS, new_figure
from .tables import _num, _pct


def _floats(values) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def figure_series(summary: dict):
    rows = summary["rows"]
    use_epoch = all(r["epoch"] is not None for r in rows)
    x = [r["epoch"] if use_epoch else r["index"] for r in rows]
    first = next((v for r in rows for v in r.get("optimizer_view", {}) if r["optimizer_view"][v]), None)
    fig, axes = new_figure(1, 3 if first else 2, figsize=(18 if first else 12, 4.5))
    ax_s, ax_g = axes[0], axes[1]
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
    if first:
        ax_o = axes[2]
        ov = [r.get("optimizer_view", {}).get(first) or {} for r in rows]
        for band, color in (("low", _COLORS[1]), ("high", _COLORS[3])):  # the GSNR panel's band colours
            ax_o.plot(x, _floats(o.get("direction_cosine", {}).get(band) for o in ov), marker="o", color=color,
                      label=f"direction cos, {band} band")
            ax_o.plot(x, _floats(o.get("adam_step_ratio", {}).get(band) for o in ov), marker="s", ls="--", color=color,
                      label=f"Adam step ratio, {band} band")
        ax_o.axhline(1.0, color="0.5", lw=0.8)
        ax_o.set_ylabel("whitened vs baseline")
        ax_o.set_title(f"{first} under the optimizer", fontsize=9)
        ax_o.legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("epoch" if use_epoch else "checkpoint index")
        ax.grid(True, alpha=0.25)
    fig.suptitle("small-scale gradient across training checkpoints", fontsize=10)
    return fig


def series_table(summary: dict):
    from pathlib import Path

    from rich.table import Table

    t = Table(title="Series: baseline filter gradient across checkpoints; raw boost, Adam step ratio and direction "
                    "cosine of the first whitening variant")
    t.add_column("checkpoint", min_width=16, overflow="fold")
    has_pred = any(r.get("predictability") for r in summary["rows"])
    for col in ("epoch", "high\nshare", "decline", "GSNR\nlow/high", "raw\nhigh", "Adam\nhigh", "cos\nlow/high"):
        t.add_column(col, no_wrap=True, justify="right")
    if has_pred:
        t.add_column("noise\ndegrees", no_wrap=True, justify="right")
        t.add_column("ES weight on noise\nbase/whitened", no_wrap=True, justify="right")
    for r in summary["rows"]:
        gs = r["gsnr_band_median"]
        first = next(iter(r["high_band_boost"]), None)
        ov = (r.get("optimizer_view") or {}).get(first) or {}
        cos = ov.get("direction_cosine", {})
        shown = Path(r["checkpoint"])
        pred = r.get("predictability") or {}
        shares = pred.get("es_weight_share") or {}
        extra = ([str(pred.get("noise_dominated", "—")), f"{_pct(shares.get('baseline'))}/{_pct(shares.get(first))}"]
                 if has_pred else [])
        t.add_row(f"{shown.parent.name}/{shown.name}", str(r["epoch"]), _num(r["high_band_share"], "{:.4f}"),
                  _num(r["decline_ratio"], "{:.2f}"), f"{_num(gs.get('low'))}/{_num(gs.get('high'))}",
                  _num(r["high_band_boost"].get(first), "{:.2f}x"),
                  _num(ov.get("adam_step_ratio", {}).get("high"), "{:.2f}x"),
                  f"{_num(cos.get('low'), '{:.2f}')}/{_num(cos.get('high'), '{:.2f}')}", *extra)
    return t
