"""Lookahead band table, verdict and the figure of the change per degree (from lookahead.json alone)."""

from __future__ import annotations

import math

import numpy as np

from .figures import _COLORS, add_km_axis, new_figure, save_figure
from .tables import _num

LABELS = {"energy_score": "energy score", "es_skill": "  skill E|X-y|", "es_spread": "  spread ½E|X-X'|",
          "mse": "ens.-mean sq. error", "power_ratio": "power pred/target"}


def _pct(x) -> str:
    return _num(None if x is None else 100 * x, "{:+.2f}%")


def _short(name: str) -> str:
    return name.replace("per_sample(", "whiten(").replace(",eps_frac=", ",eps=")


def lookahead_table(result: dict):
    from rich.table import Table

    bands = [b["name"] for b in result["bands"]] + ["total"]
    spans = {b["name"]: f"l {b['lo']}-{b['hi']}" for b in result["bands"]}
    steps = result["settings"]["steps"]
    reps = result["settings"]["repeats"]
    t = Table(title=f"Lookahead: {steps} {result['optimizer']['type']} steps per arm, held-out scores; change relative "
                    f"to the untouched checkpoint's value (lower is better except power ratio: 1 is right)")
    t.add_column("metric")
    t.add_column("row", no_wrap=True)
    for b in bands:
        t.add_column(f"{b}\n{spans.get(b, 'all l')}", justify="right")
    for m, per_band in result["table"].items():
        first = True
        arms = list(per_band[bands[0]]["arms"])
        rows = [("checkpoint", [_num(per_band[b]["checkpoint"], "{:.4g}") for b in bands])]
        for a in arms:
            rows.append((f"{_short(a)} vs ckpt", [_pct(per_band[b]["arms"][a]["vs_checkpoint"]) for b in bands]))
        for a in arms[1:]:
            cells = []
            for b in bands:
                d = per_band[b]["arms"][a]
                mark = " *" if d["beyond_noise"] else ""
                cells.append(_pct(d["vs_baseline"]) + mark)
            rows.append((f"{_short(a)} − baseline", cells))
        for a in arms[1:]:
            if "paired_sd" in per_band[bands[0]]["arms"][a]:
                rows.append((f"  paired sd over {reps + 1} orders",
                             [_num(100 * per_band[b]["arms"][a]["paired_sd"], "±{:.2f}%") for b in bands]))
        rows.append((f"noise (±, {reps} repeat{'s' if reps != 1 else ''})",
                     [_num(None if per_band[b]["noise"] is None else 100 * per_band[b]["noise"], "{:.2f}%")
                      for b in bands]))
        for label, cells in rows:
            t.add_row(LABELS[m] if first else "", label, *cells)
            first = False
        t.add_section()
    return t


def verdict(result: dict) -> list[str]:
    """One line per whitened arm: energy score and MSE vs baseline in the low and high bands, with noise."""
    lines = []
    tab = result["table"]
    names = list(tab["energy_score"]["low"]["arms"])[1:]
    for a in names:
        parts = []
        for m, label in (("energy_score", "energy score"), ("mse", "ens.-mean MSE")):
            cells = []
            for b in ("low", "high"):
                row = tab[m][b]
                d = row["arms"][a]["vs_baseline"]
                noise = row["noise"]
                tag = "beyond noise" if row["arms"][a]["beyond_noise"] else "within noise" if noise is not None and \
                    math.isfinite(noise) else "no noise level (--repeats 0)"
                if row["arms"][a].get("paired_sd") is not None:
                    tag += f", paired sd ±{100 * row['arms'][a]['paired_sd']:.2f}%"
                cells.append(f"{b} {_pct(d)} ({tag})")
            parts.append(f"{label} " + ", ".join(cells))
        lines.append(f"{_short(a)} vs baseline after {result['settings']['steps']} steps: " + "; ".join(parts))
    if not names:
        lines.append("no whitening arm (add --whitening per_sample)")
    return lines


def _curves(result: dict, metric: str):
    before = np.asarray(result["before"]["per_degree"]["overall"][metric], dtype=float)
    arms = {a["name"]: np.asarray(a["per_degree"]["overall"][metric], dtype=float) for a in result["arms"]}
    return before, arms


def plot_lookahead(result: dict, path, fmt: str = "png"):
    return save_figure(figure_lookahead(result), path, fmt)


def figure_lookahead(result: dict):
    """Per degree: (arm - baseline) / checkpoint for each whitened arm, the repeats' spread, and baseline - checkpoint."""
    metrics = ("energy_score", "mse", "power_ratio")
    fig, axes = new_figure(1, len(metrics), figsize=(5.2 * len(metrics), 4.4))
    degrees = np.asarray(result["degrees"])[1:]  # l = 0 (the global mean) swamps the scale; it is in the tables
    base_name = result["arms"][0]["name"]
    with np.errstate(invalid="ignore", divide="ignore"):
        for ax, m in zip(axes, metrics):
            before, arms = _curves(result, m)
            before, arms = before[1:], {k: v[1:] for k, v in arms.items()}
            ref = np.abs(before)
            base = arms[base_name]
            ax.plot(degrees, 100 * (base - before) / ref, color=_COLORS[0], lw=1, ls="--",
                    label="baseline − checkpoint")
            for i, a in enumerate(x for x in result["arms"] if x["repeat"] == 0 and x["name"] != base_name):
                ax.plot(degrees, 100 * (arms[a["name"]] - base) / ref, color=_COLORS[(i + 1) % len(_COLORS)], lw=1.4,
                        label=f"{_short(a['name'])} − baseline")
            reps = [arms[a["name"]] for a in result["arms"] if a["repeat"] > 0 and a["variant"] == base_name]
            if reps:
                noise = 100 * np.sqrt(np.mean([(r - base) ** 2 for r in reps], axis=0)) / ref
                ax.fill_between(degrees, -2 * noise, 2 * noise, color="0.85", zorder=0,
                                label="±2 noise (repeat − baseline)")
            ax.axhline(0, color="0.5", lw=0.8)
            ax.set_xlabel("degree l (from 1)")
            ax.set_ylabel("change, % of the checkpoint's value at l")
            ax.set_title({"energy_score": "energy score (unwhitened)", "mse": "ensemble-mean squared error",
                          "power_ratio": "power ratio pred/target"}[m], fontsize=10)
            ax.set_xlim(degrees[0] - 0.5, degrees[-1] + 0.5)
            add_km_axis(ax)
            ax.grid(True, alpha=0.25)
            ax.legend(fontsize=7)
    fig.suptitle(f"lookahead: {result['settings']['steps']} steps per arm on held-out pairs "
                 f"({result['data']['eval'].get('pairs')} pairs)", fontsize=10, y=1.08)
    return fig
