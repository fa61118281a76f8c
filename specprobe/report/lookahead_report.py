"""Lookahead sweep: the compact table, trajectory, recommendation, the full band table and the figures
(from lookahead.json alone)."""

from __future__ import annotations

import math

import numpy as np

from ..probing.recommend import still_growing, t975, threshold_text
from .figures import _COLORS, add_km_axis, new_figure, save_figure
from .tables import _num

LABELS = {"energy_score": "energy score", "es_skill": "  skill E|X-y|", "es_spread": "  spread ½E|X-X'|",
          "mse": "ens.-mean sq. error", "power_ratio": "power pred/target"}
SHORT = {"energy_score": "ES", "mse": "MSE"}


def _pct(x) -> str:
    return _num(None if x is None else 100 * x, "{:+.2f}%")


def _short(name: str) -> str:
    return name.replace("per_sample(", "whiten(").replace(",eps_frac=", ",eps=")


def _arm_label(row: dict, rows: list[dict]) -> str:
    """``gamma 0.5`` (and ``eps 0.05`` when the sweep has several eps_frac); the name for other arms."""
    if row.get("gamma") is None:
        return _short(row["arm"])
    several_eps = len({r.get("eps_frac") for r in rows}) > 1
    return f"gamma {row['gamma']:g}" + (f", eps {row['eps_frac']:g}" if several_eps else "")


def ensure_recommendation(result: dict) -> dict:
    """The result with its ``sweep`` rows and ``recommendation`` (computed for files written before them)."""
    if "sweep" in result and "recommendation" in result:
        return result
    from ..probing.recommend import add_recommendation

    return add_recommendation(dict(result))


def _judged(j: dict, k: float) -> str:
    """``+0.47±0.10%*``: paired mean ± se over the orders; * beyond noise, ? unjudged."""
    if j is None or j.get("mean") is None:
        return "—"
    if j.get("se") is None:
        return f"{100 * j['mean']:+.2f} ?"
    mark = "*" if j["judgement"] == "beyond noise" else " "
    return f"{100 * j['mean']:+.2f}±{100 * j['se']:.2f}{mark}"


def _flags(row: dict, rec: dict, rule: dict) -> str:
    flags = []
    if rec.get("chosen") == row["arm"]:
        flags.append("CHOSEN")
    why = rec.get("reasons", {}).get(row["arm"], [])
    for w in why:
        if w.startswith("chosen") or w.startswith("qualifies"):
            continue
        if "exceeds" in w:
            flags.append("cost>max")
        elif "rollout" in w:
            flags.append("rollout worse")
        elif "gain" in w or "unjudged" in w:
            flags.append("no clear gain")
    if any(still_growing(row["bands"].get(rule.get("cost_band", "low"), {}).get(m))
           for m in rule.get("cost_metrics", ("energy_score", "mse"))):
        flags.append("cost growing")
    return ", ".join(dict.fromkeys(flags)) or "—"


def sweep_table(result: dict):
    """One row per whitened arm: per band ES and MSE change vs baseline ± paired se, rollout drift, flags."""
    from rich import box
    from rich.table import Table

    result = ensure_recommendation(result)
    rows, rec = result["sweep"], result["recommendation"]
    rule = rec["rule"]
    k = rule.get("k")
    bands = [b["name"] for b in result["bands"]]
    spans = {b["name"]: f"l {b['lo']}-{b['hi']}" for b in result["bands"]}
    s = result["settings"]
    orders = s.get("orders", s["repeats"] + 1)
    n = max((row["bands"][bands[0]]["energy_score"]["n"] for row in rows), default=0)
    t = Table(title=f"Lookahead sweep: arm − baseline after {s['steps']} {result['optimizer']['type']} steps "
                    f"(lr {result['optimizer']['lr']:.3g}), held-out, in % of the checkpoint's value, ± paired se over "
                    f"{n} batch order{'s' if n != 1 else ''} (* beyond noise: |mean| > {threshold_text(k)} se, one sign "
                    "in every order; ? unjudged)",
              box=box.SIMPLE_HEAD, padding=(0, 1))
    t.add_column("arm", no_wrap=True)
    for b in bands:
        t.add_column(f"{b} band\n{spans[b]}", justify="right", no_wrap=True)
    has_rollout = any(r.get("rollout") for r in rows)
    if has_rollout:
        lead = next(r["rollout"].get("lead") for r in rows if r.get("rollout"))
        t.add_column(f"rollout power\nratio, lead {lead}\n" + "/".join(bands), justify="right", no_wrap=True)
    t.add_column("flags", min_width=8)
    for row in rows:
        cells = ["\n".join(f"{SHORT[m]} {_judged(row['bands'][b][m], k)}" for m in ("energy_score", "mse"))
                 for b in bands]
        if has_rollout:
            ro = row.get("rollout") or {}
            cells.append("/".join(_num((ro.get("drift", {}).get(b, {}).get("power_ratio") or {}).get("value"), "{:.3g}")
                                  for b in bands) + f"\nblow-up: {ro.get('first_blow_up_lead') or 'never'}")
        t.add_row(_arm_label(row, rows), *cells, _flags(row, rec, rule))
    t.add_section()
    spread = ["\n".join(f"{SHORT[m]} " + _num(None if result["table"][m][b]["noise"] is None
                                              else 100 * result["table"][m][b]["noise"], "±{:.2f}")
                         for m in ("energy_score", "mse")) for b in bands]
    label = f"run-to-run\nspread of one\narm ({orders - 1} rerun{'s' if orders != 2 else ''})"
    if has_rollout:
        base = next((r["rollout"] for r in rows if r.get("rollout")), {})
        ck = ((result.get("rollout") or {}).get("checkpoint") or {})
        t.add_row(label, *spread, "", "")
        t.add_row("baseline", *[""] * len(spread),
                  "/".join(_num((d.get("baseline") if isinstance(d, dict) else None), "{:.3g}")
                           for d in (base.get("drift", {}).get(b, {}).get("power_ratio") for b in bands))
                  + f"\nblow-up: {base.get('baseline_first_blow_up_lead') or 'never'}", "")
        t.add_row("checkpoint", *[""] * len(spread),
                  "/".join(_num(((ck.get("drift") or {}).get("power_ratio") or {}).get(b), "{:.3g}") for b in bands)
                  + f"\nblow-up: {ck.get('first_blow_up_lead') or 'never'}", "")
    else:
        t.add_row(label, *spread, "")
    return t


def trajectory_table(result: dict):
    """Per arm: the paired difference at each scored step count, low and high bands, ES and MSE."""
    from rich import box
    from rich.table import Table

    result = ensure_recommendation(result)
    rows = result["sweep"]
    steps = [x["steps"] for x in (rows[0]["bands"]["low"]["energy_score"].get("trajectory") or [])] if rows else []
    if not steps:
        return None
    t = Table(title=f"Trajectory: arm − baseline after {', '.join(map(str, steps))} steps (paired mean, %; "
                    "↗ still growing at the last step)", box=box.SIMPLE_HEAD, padding=(0, 1))
    t.add_column("arm", no_wrap=True)
    cols = [(b, m) for b in ("low", "high") for m in ("energy_score", "mse")]
    for b, m in cols:
        t.add_column(f"{b} {SHORT[m]}", justify="right")
    for row in rows:
        cells = []
        for b, m in cols:
            j = row["bands"][b][m]
            traj = j.get("trajectory") or []
            text = " ".join(_num(None if x["mean"] is None else 100 * x["mean"], "{:+.2f}") for x in traj)
            cells.append(text + (" ↗" if still_growing(j) else ""))
        t.add_row(_arm_label(row, rows), *cells)
    return t


def recommendation_lines(result: dict) -> list[str]:
    result = ensure_recommendation(result)
    rec = result["recommendation"]
    lines = [rec["summary"], f"rule: {rec['rule']['text']}"]
    for arm, why in rec["reasons"].items():
        if arm != rec.get("chosen"):
            lines.append(f"  {_short(arm)}: {'; '.join(why)}")
    return lines


def lookahead_summary(result: dict):
    """What `specprobe lookahead` prints first: the sweep table, the trajectory and the recommendation."""
    from rich.console import Group
    from rich.text import Text

    result = ensure_recommendation(result)
    parts = [sweep_table(result)]
    traj = trajectory_table(result)
    if traj is not None:
        parts.append(traj)
    parts += [Text(line) for line in recommendation_lines(result)]
    return Group(*parts)


def provenance_lines(result: dict) -> list[str]:
    """Optimizer, lr and loss with where each came from (defaults said so), warnings, notes."""
    opt, loss = result["optimizer"], result["loss"]
    lines = [f"optimizer: {opt['type']} lr {opt['lr']:.3g} ({opt.get('lr_source') or opt.get('type_source')}), "
             f"{opt['state']}"]
    src = str(loss.get("source", ""))
    recipe = (f"loss {loss['crps_weight']:g} CRPS + {loss['energy_score_weight']:g} ES, "
              f"{loss['n_ensemble']} members")
    if src.startswith("defaults"):
        lines.append(f"{recipe} -- DEFAULTS: no training loss config was found for this checkpoint, so this is not "
                     "necessarily how the run trained; give --crps-weight/--energy-score-weight to set it")
    else:
        lines.append(f"{recipe} (from {src})")
    for w in result.get("warnings") or []:
        lines.append(f"warning: {w}")
    if result.get("rollout_note"):
        lines.append(result["rollout_note"])
    lines.append("this is the lookahead sweep (training, the decision); `specprobe sweep` is the gradient-only "
                 "pre-screen over the same gammas")
    return lines


# ------------------------------------------------------------------ the full band table


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
                mark = {True: " *", False: "", None: " ?"}[d.get("beyond_noise")]
                cells.append(_pct(d["vs_baseline"]) + mark)
            rows.append((f"{_short(a)} − baseline", cells))
            if (per_band[bands[0]]["arms"][a].get("paired") or {}).get("se") is not None:
                rows.append((f"  paired se, {per_band[bands[0]]['arms'][a]['paired']['n']} orders",
                             [_num(100 * per_band[b]["arms"][a]["paired"]["se"], "±{:.2f}%") for b in bands]))
            elif "paired_sd" in per_band[bands[0]]["arms"][a]:  # files written before the paired judgement
                rows.append((f"  paired sd over {reps + 1} orders",
                             [_num(100 * per_band[b]["arms"][a]["paired_sd"], "±{:.2f}%") for b in bands]))
        rows.append((f"run-to-run spread of one arm ({reps} rerun{'s' if reps != 1 else ''})",
                     [_num(None if per_band[b]["noise"] is None else 100 * per_band[b]["noise"], "±{:.2f}%")
                      for b in bands]))
        for label, cells in rows:
            t.add_row(LABELS[m] if first else "", label, *cells)
            first = False
        t.add_section()
    return t


def verdict(result: dict) -> list[str]:
    """One line per whitened arm: energy score and MSE vs baseline in the low and high bands, judged
    against the paired noise (unjudged without paired orders)."""
    lines = []
    tab = result["table"]
    names = list(tab["energy_score"]["low"]["arms"])[1:]
    for a in names:
        parts = []
        for m, label in (("energy_score", "energy score"), ("mse", "ens.-mean MSE")):
            cells = []
            for b in ("low", "high"):
                cell = tab[m][b]["arms"][a]
                j = cell.get("paired") or {}
                if cell.get("beyond_noise") is None:
                    tag = "unjudged: no paired batch orders"
                else:
                    tag = (f"{'beyond' if cell['beyond_noise'] else 'within'} paired noise, "
                           f"se ±{100 * j['se']:.2f}% over {j['n']} orders")
                cells.append(f"{b} {_pct(j.get('mean', cell['vs_baseline']))} ({tag})")
            parts.append(f"{label} " + ", ".join(cells))
        lines.append(f"{_short(a)} vs baseline after {result['settings']['steps']} steps: " + "; ".join(parts))
    if not names:
        lines.append("no whitening arm (add --gamma or --whitening)")
    return lines


# ------------------------------------------------------------------ figures


def _curves(result: dict, metric: str):
    before = np.asarray(result["before"]["per_degree"]["overall"][metric], dtype=float)
    arms = {a["name"]: np.asarray(a["per_degree"]["overall"][metric], dtype=float) for a in result["arms"]}
    return before, arms


def plot_lookahead(result: dict, path, fmt: str = "png"):
    return save_figure(figure_lookahead(result), path, fmt)


def figure_lookahead(result: dict):
    """Per degree: (arm - baseline) / checkpoint for each whitened arm with its paired ±2 se band
    (over the batch orders), and baseline - checkpoint."""
    metrics = ("energy_score", "mse", "power_ratio")
    fig, axes = new_figure(1, len(metrics), figsize=(5.2 * len(metrics), 4.4))
    degrees = np.asarray(result["degrees"])[1:]  # l = 0 (the global mean) swamps the scale; it is in the tables
    base_arm = result["arms"][0]
    base_name, base_variant = base_arm["name"], base_arm["variant"]
    k = (result.get("settings") or {}).get("k")
    by = {(a["variant"], a["repeat"]): a["name"] for a in result["arms"]}
    with np.errstate(invalid="ignore", divide="ignore"):
        for ax, m in zip(axes, metrics):
            before, arms = _curves(result, m)
            before, arms = before[1:], {key: v[1:] for key, v in arms.items()}
            ref = np.abs(before)
            base = arms[base_name]
            ax.plot(degrees, 100 * (base - before) / ref, color=_COLORS[0], lw=1, ls="--",
                    label="baseline − checkpoint")
            for i, a in enumerate(x for x in result["arms"] if x["repeat"] == 0 and x["name"] != base_name):
                color = _COLORS[(i + 1) % len(_COLORS)]
                diffs = np.asarray([100 * (arms[by[(a["variant"], r)]] - arms[by[(base_variant, r)]]) / ref
                                    for r in sorted({x["repeat"] for x in result["arms"]})
                                    if (a["variant"], r) in by and (base_variant, r) in by])
                paired = len(diffs) > 1
                mean = diffs.mean(0) if paired else 100 * (arms[a["name"]] - base) / ref
                ax.plot(degrees, mean, color=color, lw=1.4,
                        label=f"{_short(a['name'])} − baseline" + (f" (mean of {len(diffs)} orders)" if paired else ""))
                if paired:
                    se = diffs.std(0, ddof=1) / math.sqrt(len(diffs))
                    t = k if k is not None else t975(len(diffs) - 1)
                    ax.fill_between(degrees, mean - t * se, mean + t * se, color=color, alpha=0.2, lw=0,
                                    label=(f"±{t:.3g} paired se ({'95% interval, ' if k is None else ''}"
                                           f"{len(diffs)} orders)") if i == 0 else None)
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


def figure_sweep(result: dict):
    """Effect against gamma, one panel per band: ES and MSE change vs baseline, ±k paired se error bars;
    the low band also shows the recommendation's cost limit; the recommended gamma is marked."""
    result = ensure_recommendation(result)
    rows, rec = result["sweep"], result["recommendation"]
    rule = rec["rule"]
    bands = [b["name"] for b in result["bands"]]
    fig, axes = new_figure(1, len(bands), figsize=(4.6 * len(bands), 4.0))
    eps_values = sorted({r["eps_frac"] for r in rows if r["eps_frac"] is not None}) or [None]
    markers = {"energy_score": "o", "mse": "s"}
    for ax, band in zip(axes, bands):
        for ci, m in enumerate(("energy_score", "mse")):
            for ei, eps in enumerate(eps_values):
                sel = sorted((r for r in rows if r["eps_frac"] == eps), key=lambda r: r["gamma"] or 0.0)
                g = [0.0] + [r["gamma"] or 0.0 for r in sel]
                y = [0.0] + [100 * (r["bands"][band][m]["mean"] or math.nan) for r in sel]
                err = [0.0] + [100 * (r["bands"][band][m]["threshold"] or 0.0) * (r["bands"][band][m]["se"] or 0.0)
                               for r in sel]
                label = SHORT[m] + (f", eps {eps:g}" if len(eps_values) > 1 else "")
                ax.errorbar(g, y, yerr=err, color=_COLORS[(ci * len(eps_values) + ei) % len(_COLORS)],
                            marker=markers[m], ms=4, lw=1.2, capsize=3, label=label)
        if band == rule.get("cost_band", "low") and isinstance(rule.get("max_cost"), (int, float)):
            ax.axhline(100 * rule["max_cost"], color="0.4", lw=0.9, ls=":", label=f"max cost {100 * rule['max_cost']:g}%")
        if rec.get("gamma") is not None:
            ax.axvline(rec["gamma"], color="0.6", lw=0.8, ls="--", label=f"recommended gamma {rec['gamma']:g}")
        ax.axhline(0, color="0.5", lw=0.8)
        b = next(x for x in result["bands"] if x["name"] == band)
        ax.set_title(f"{band} band (l {b['lo']}-{b['hi']})", fontsize=10)
        ax.set_xlabel("gamma (0 = baseline)")
        if band == bands[0]:
            ax.set_ylabel("arm − baseline, % of the checkpoint's value")
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=7)
    what = "95% paired t-interval" if rule.get("k") is None else f"±{rule['k']:g} paired se"
    fig.suptitle(f"lookahead sweep: {result['settings']['steps']} steps, error bars: {what} over the batch "
                 f"orders; {rec['summary'].split(' -- ')[0]}", fontsize=9, y=1.06)
    return fig
