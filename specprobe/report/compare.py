"""``specprobe compare``: overlay and tabulate several grad-by-l result files."""

from __future__ import annotations

import numpy as np

from ..errors import SpecprobeError
from ..probing.result import SCHEMA, ProbeResult, epoch_of
from .figures import _COLORS, new_figure, save_figure, add_km_axis
from .files import read_result_json
from .tables import _num

NORMALIZE = ("none", "low-band", "total")


def load_results(paths) -> list[ProbeResult]:
    results = []
    for p in paths:
        obj = read_result_json(p)
        if obj.get("schema") != SCHEMA:
            raise SpecprobeError(f"{p}: result schema {obj.get('schema')!r}, expected {SCHEMA!r}")
        try:
            results.append(ProbeResult.from_dict(obj))
        except (ValueError, TypeError, KeyError) as e:
            raise SpecprobeError(f"{p}: malformed result file ({e})") from None
    return results


def _curve(result: ProbeResult, variant: str, normalize: str) -> np.ndarray:
    if variant not in result.grad_by_l:
        raise SpecprobeError(f"variant {variant!r} not in {result.provenance.get('checkpoint', {}).get('path')}; "
                             f"it has {', '.join(result.variant_names)}")
    y = np.asarray(result.grad_by_l[variant]["total"], dtype=float)
    if normalize == "low-band":
        y = y / result.stats[variant]["band_means"]["low"]
    elif normalize == "total":
        y = y / np.nansum(y)
    return y


def compare_rows(results, labels) -> list[dict]:
    rows = []
    for label, r in zip(labels, results):
        base = r.stats["baseline"]
        rows.append({
            "label": label,
            "checkpoint": r.provenance.get("checkpoint", {}).get("path"),
            "epoch": epoch_of(r),
            "lmax": len(r.degrees),
            "decline_ratio": base["decline_ratio"],
            "spearman_rho": base["spearman_rho"],
            "loglog_slope": base["loglog_slope"],
            "high_band_boost": {v: b.get("high") for v, b in r.stats.get("boost", {}).items()},
            "gsnr_band_median": base.get("gsnr_band_median", {}),
        })
    return rows


def compare_table(rows: list[dict]):
    from rich.table import Table

    t = Table(title="Compared probes (baseline curve)")
    for col in ("label", "checkpoint", "epoch", "L", "decline", "rho", "slope", "high-band boost", "GSNR low/high"):
        t.add_column(col)
    for r in rows:
        boosts = ", ".join(f"{k.replace('per_sample', 'ps')}: {_num(v, '{:.2f}x')}" for k, v in r["high_band_boost"].items())
        gs = r["gsnr_band_median"]
        t.add_row(r["label"], str(r["checkpoint"]), str(r["epoch"] if r["epoch"] is not None else "—"),
                  str(r["lmax"]), _num(r["decline_ratio"], "{:.2f}"), _num(r["spearman_rho"], "{:+.2f}"),
                  _num(r["loglog_slope"], "{:+.2f}"), boosts or "—",
                  f"{_num(gs.get('low'))} / {_num(gs.get('high'))}" if gs else "—")
    return t


def figure_compare(results, labels, *, variant="baseline", normalize="none"):
    has_gsnr = any(r.gsnr_by_l.get(variant) for r in results)
    has_factor = any(r.whitening_factor_by_l for r in results)
    ncols = 1 + has_gsnr + has_factor
    fig, axes = new_figure(1, ncols, figsize=(6.5 * ncols, 4.8), squeeze=False)
    axes = axes[0]
    for i, (label, r) in enumerate(zip(labels, results)):
        color = _COLORS[i % len(_COLORS)]
        l = np.asarray(r.degrees)
        axes[0].plot(l, _curve(r, variant, normalize), color=color, lw=1.8,
                     label=f"{label} ({r.stats[variant]['decline_ratio']:.1f}x)")
        k = 1
        if has_gsnr:
            g = np.asarray(r.gsnr_by_l.get(variant) or [], dtype=float)
            if g.size:
                axes[k].plot(l, g, color=color, lw=1.5, label=label)
            k += 1
        if has_factor and r.whitening_factor_by_l:
            name = next(iter(r.whitening_factor_by_l))
            f = np.mean([v["mean"] for v in r.whitening_factor_by_l[name].values()], axis=0)
            axes[k].plot(l, f, color=color, lw=1.5, label=f"{label}: {name}")
    axes[0].set_ylabel({"none": "|∂loss/∂w| per degree", "low-band": "gradient / low-band mean",
                        "total": "share of the gradient"}[normalize])
    axes[0].set_title(f"filter gradient by degree — {variant}", fontsize=10)
    titles = (["GSNR per degree"] if has_gsnr else []) + (["whitening factor (channel mean)"] if has_factor else [])
    for ax, title in zip(axes[1:], titles):
        ax.set_title(title, fontsize=10)
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("degree l")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7)
        add_km_axis(ax)
    return fig


def plot_compare(results, labels, path, *, variant="baseline", normalize="none", fmt="png") -> None:
    save_figure(figure_compare(results, labels, variant=variant, normalize=normalize), path, fmt)


def labels_for(paths, labels: str | None) -> list[str]:
    if labels is None:
        from pathlib import Path

        names = [Path(p).parent.name or Path(p).stem for p in paths]
        return names if len(set(names)) == len(names) else [str(p) for p in paths]
    out = [s.strip() for s in labels.split(",")]
    if len(out) != len(paths):
        raise SpecprobeError(f"--labels: {len(out)} labels for {len(paths)} files")
    return out

