"""``specprobe compare``: overlay and tabulate several grad-by-l result files."""

from __future__ import annotations

import numpy as np

from ..errors import SpecprobeError
from ..probing.result import SCHEMA, ProbeResult, epoch_of
from ..probing.sweep import optimizer_columns
from ..spectral.predictability import summary_columns
from .figures import _COLORS, add_km_axis, new_figure, plain_log_ticks, save_figure
from .files import read_result_json
from .tables import _num, _pct, _short

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
            "optimizer": (r.optimizer or {}).get("name"),
            "optimizer_view": {v: optimizer_columns(r, v) for v in r.stats.get("boost", {})},
            "predictability": summary_columns(r.predictability),
        })
    return rows


def compare_table(rows: list[dict]):
    from rich.table import Table

    t = Table(title="Compared probes (baseline curve)")
    has_pred = any(r.get("predictability") for r in rows)
    for col in ("label", "checkpoint", "epoch", "L", "decline", "rho", "slope", "raw high-band boost", "GSNR low/high"):
        t.add_column(col)
    if has_pred:
        t.add_column("noise degrees")
        t.add_column("ES weight on noise")
    for r in rows:
        pred = r.get("predictability") or {}
        extra = ([str(pred.get("noise_dominated", "—")),
                  ", ".join(f"{_short(k)}: {_pct(v)}" for k, v in (pred.get("es_weight_share") or {}).items()) or "—"]
                 if has_pred else [])
        boosts = ", ".join(f"{k.replace('per_sample', 'ps')}: {_num(v, '{:.2f}x')}" for k, v in r["high_band_boost"].items())
        gs = r["gsnr_band_median"]
        t.add_row(r["label"], str(r["checkpoint"]), str(r["epoch"] if r["epoch"] is not None else "—"),
                  str(r["lmax"]), _num(r["decline_ratio"], "{:.2f}"), _num(r["spearman_rho"], "{:+.2f}"),
                  _num(r["loglog_slope"], "{:+.2f}"), boosts or "—",
                  f"{_num(gs.get('low'))} / {_num(gs.get('high'))}" if gs else "—", *extra)
    return t


def compare_optimizer_table(rows: list[dict]):
    """Per file and whitening variant: raw boost vs steady-state Adam step ratio vs direction cosine, per band."""
    from rich.table import Table

    t = Table(title="Under each file's training optimizer: whitened / baseline raw gradient and steady-state Adam "
                    "step, and direction cosine (other: the non-spectral weights; — : the file predates these statistics)")
    for col in ("label", "variant", "optimizer", "raw high", "Adam low", "Adam high", "cos low", "cos high",
                "cos other"):
        t.add_column(col, justify="left" if col in ("label", "variant", "optimizer") else "right", no_wrap=True)
    for r in rows:
        for variant, boost in r["high_band_boost"].items():
            v = (r.get("optimizer_view") or {}).get(variant) or {}
            adam, cos = v.get("adam_step_ratio", {}), v.get("direction_cosine", {})
            t.add_row(r["label"], _short(variant), r.get("optimizer") or "—", _num(boost, "{:.2f}x"),
                      _num(adam.get("low"), "{:.2f}x"), _num(adam.get("high"), "{:.2f}x"),
                      _num(cos.get("low"), "{:.2f}"), _num(cos.get("high"), "{:.2f}"),
                      _num(v.get("direction_cosine_non_spectral"), "{:.2f}"))
    return t


def figure_compare(results, labels, *, variant="baseline", normalize="none"):
    has_gsnr = any(r.gsnr_by_l.get(variant) for r in results)
    has_factor = any(r.whitening_factor_by_l for r in results)
    ncols = 1 + has_gsnr + has_factor
    has_opt = any(len(r.direction_cosine_by_l) > 1 for r in results)
    fig, grid = new_figure(2 if has_opt else 1, max(ncols, 2) if has_opt else ncols,
                           figsize=(6.5 * max(ncols, 2 if has_opt else 1), 9.6 if has_opt else 4.8), squeeze=False)
    axes = grid[0][:ncols]
    for extra in grid[0][ncols:]:
        extra.set_visible(False)
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
            # the factor lives on the loss SHT's degrees, which can outnumber the filters' (internal grid)
            axes[k].plot(np.arange(len(f)), f, color=color, lw=1.5, label=f"{label}: {name}")
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
    if has_opt:
        _plot_optimizer_overlay(grid[1], results, labels, variant)
    return fig


def plot_compare(results, labels, path, *, variant="baseline", normalize="none", fmt="png") -> None:
    save_figure(figure_compare(results, labels, variant=variant, normalize=normalize), path, fmt)


def _optimizer_variant(result: ProbeResult, variant: str) -> str | None:
    """The whitened variant to overlay: ``variant`` if whitened and present, else the file's first whitened one."""
    names = [n for n in result.variant_names[1:] if n in result.direction_cosine_by_l]
    return variant if variant in names else (names[0] if names else None)


def _plot_optimizer_overlay(axes, results, labels, variant) -> None:
    """Second row: direction cosine and steady-state Adam step ratio (raw boost dashed) per degree."""
    ax_c, ax_s = axes[0], axes[1]
    for extra in axes[2:]:
        extra.set_visible(False)
    for i, (label, r) in enumerate(zip(labels, results)):
        name = _optimizer_variant(r, variant)
        if name is None:
            continue
        color = _COLORS[i % len(_COLORS)]
        l = np.asarray(r.degrees)
        ax_c.plot(l, np.asarray(r.direction_cosine_by_l[name]["total"], dtype=float), color=color, lw=1.8,
                  label=f"{label}: {name}")
        ax_s.plot(l, np.asarray(r.adam_step_by_l[name]["ratio"]["total"], dtype=float), color=color, lw=1.8,
                  label=f"{label}: Adam step")
        base = np.asarray(r.grad_by_l["baseline"]["total"], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            ax_s.plot(l, np.asarray(r.grad_by_l[name]["total"], dtype=float) / base, color=color, lw=1.2, ls="--",
                      label=f"{label}: raw gradient")
    ax_c.set_ylabel("cos(whitened mean gradient, baseline's)")
    ax_c.set_title("direction per degree (1 = unchanged)", fontsize=10)
    ax_s.set_ylabel("whitened / baseline")
    ax_s.set_yscale("log")
    plain_log_ticks(ax_s)
    ax_s.axhline(1.0, color="0.5", lw=0.8)
    ax_s.set_title("steady-state Adam step (solid) vs raw gradient (dashed)", fontsize=10)
    for ax in (ax_c, ax_s):
        ax.set_xlabel("degree l")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7)


def labels_for(paths, labels: str | None) -> list[str]:
    if labels is None:
        from pathlib import Path

        names = [Path(p).parent.name or Path(p).stem for p in paths]
        return names if len(set(names)) == len(names) else [str(p) for p in paths]
    out = [s.strip() for s in labels.split(",")]
    if len(out) != len(paths):
        raise SpecprobeError(f"--labels: {len(out)} labels for {len(paths)} files")
    return out



# ------------------------------------------------------------------ lookahead sweeps (lookahead.json)

LOOKAHEAD_SCHEMA = "specprobe.lookahead/1"


def is_lookahead_file(path) -> bool:
    return read_result_json(path).get("schema") == LOOKAHEAD_SCHEMA


def lookahead_compare_rows(paths, labels, rule=None) -> list[dict]:
    """Per lookahead.json: its settings and the recommendation recomputed from the file under ``rule``
    (None: the default rule), beside the one stored in it."""
    from ..probing.recommend import Rule, add_recommendation

    rows = []
    for label, p in zip(labels, paths):
        obj = read_result_json(p)
        if obj.get("schema") != LOOKAHEAD_SCHEMA or "arms" not in obj or "table" not in obj:
            raise SpecprobeError(f"{p}: not a lookahead.json (schema {obj.get('schema')!r}); compare takes either "
                                 "grad-by-l result files or lookahead files, not both")
        stored = (obj.get("recommendation") or {}).get("choice")
        r = rule or Rule(k=(obj.get("settings") or {}).get("k"))
        add_recommendation(obj, r)
        s, opt = obj["settings"], obj["optimizer"]
        rows.append({"label": label, "checkpoint": (obj.get("provenance") or {}).get("checkpoint", {}).get("path"),
                     "steps": s["steps"], "lr": opt["lr"], "orders": s.get("orders", s["repeats"] + 1),
                     "recommendation": obj["recommendation"], "stored_choice": stored, "sweep": obj["sweep"]})
    return rows


def lookahead_compare_table(rows: list[dict]):
    from rich.table import Table

    t = Table(title="Compared lookahead sweeps: the recommendation recomputed from each file "
                    f"(rule: {rows[0]['recommendation']['rule']['text']})" if rows else "Compared lookahead sweeps")
    for col in ("label", "steps", "lr", "orders", "recommended", "stored in the file", "high-band ES / low-band MSE"):
        t.add_column(col)
    for r in rows:
        rec = r["recommendation"]
        effects = "; ".join(
            f"g{x['gamma']:g}: {_num(100 * (x['bands']['high']['energy_score']['mean'] or 0), '{:+.2f}')} / "
            f"{_num(100 * (x['bands']['low']['mse']['mean'] or 0), '{:+.2f}')}%" for x in r["sweep"]
            if x.get("gamma") is not None)
        t.add_row(r["label"], str(r["steps"]), f"{r['lr']:.3g}", str(r["orders"]), _short(rec["choice"]),
                  _short(str(r["stored_choice"] or "—")), effects or "—")
    return t
