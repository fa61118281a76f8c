"""Terminal tables and the verdict, from a ProbeResult (rich)."""

from __future__ import annotations

import functools
import math

from ..probing.result import ProbeResult, wavelength_km


def _num(x, fmt="{:.3g}") -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def _km(lo: int, hi: int) -> str:
    a, b = wavelength_km(max(lo, 1)), wavelength_km(hi)
    return f"{b:,.0f}–{a:,.0f}" if hi > lo else f"{a:,.0f}"


SYNTHETIC_HEADER = ("[yellow]data: SYNTHETIC seeded red-spectrum fields on the model's grid (from the checkpoint's "
                    "normalisation where it has one); pass --data for real states[/yellow]")


def deterministic_line(result: ProbeResult) -> str | None:
    """For a model without noise: its members are identical, so the energy score's spread term is zero."""
    model = result.provenance.get("model", {})
    n_ensemble = result.provenance.get("options", {}).get("n_ensemble", 1)
    if not model.get("deterministic") or n_ensemble <= 1:
        return None
    return (f"deterministic model (no noise): its {n_ensemble} ensemble members are identical, so the energy "
            "score's spread term is zero and only the skill term reaches the weights; --n-ensemble 1 probes the "
            "same loss at a fraction of the cost")


def sampling_line(result: ProbeResult) -> str | None:
    """Where GSNR and Adam steps are estimates from sampled elements: how many, and how large the error."""
    meta = result.provenance.get("moment_sampling") or {}
    sampled = meta.get("sampled_parameters") or {}
    if not sampled:
        return None
    worst = 0.0
    for v in result.variant_names:
        for values, errors in ((result.gsnr_by_l.get(v) or [], result.gsnr_stderr_by_l.get(v) or []),
                               (result.adam_step_by_l.get(v, {}).get("total", []),
                                result.adam_step_by_l.get(v, {}).get("stderr", {}).get("total", []))):
            for x, e in zip(values, errors):
                if x is not None and e is not None and math.isfinite(x) and math.isfinite(e) and x > 0:
                    worst = max(worst, e / x)
    shares = sorted({(s["sampled"], s["of"]) for s in sampled.values()})
    share = ", ".join(f"{n:,} of {of:,}" for n, of in shares)
    return (f"GSNR and Adam steps: per-element variances kept at {share} elements per degree in {len(sampled)} "
            f"parameters (seeded sample; largest standard error {100 * worst:.2g}% of a per-degree value; "
            "--moment-elements all for exact)")


def _label(name: str) -> str:
    return name.replace("per_sample(", "whitening ").rstrip(")").replace(",eps_frac=", " eps_frac=")


def _raw_lines(result: ProbeResult) -> list[str]:
    st = result.stats["baseline"]
    bands = {b["name"]: b for b in result.bands}
    low, high = bands["low"], bands["high"]
    ratio = st["decline_ratio"]
    word = "falls" if ratio > 1 else "rises"
    factor = ratio if ratio > 1 else 1 / ratio if ratio else math.nan
    line1 = (f"raw gradient {word} {_num(factor, '{:.1f}')}x from l<={low['hi']} to l>={high['lo']} "
             f"(Spearman rho {_num(st['spearman_rho'], '{:+.2f}')}, log-log slope {_num(st['loglog_slope'], '{:+.2f}')})")
    lifts = []
    for name, boost in result.stats.get("boost", {}).items():
        lifts.append(f"{_label(name)} lifts the raw high-band gradient {_num(boost['high'], '{:.1f}')}x "
                     f"(low band {_num(boost['low'], '{:.2f}')}x)")
    line2 = "; ".join(lifts) if lifts else "no whitening variant probed (add --whitening per_sample)"
    return [line1, line2]


def band_rows(result: ProbeResult) -> tuple[list[str], list[list]]:
    """The band table as numbers (columns, rows): what the terminal shows and W&B logs."""
    has_gsnr = bool(result.gsnr_by_l.get("baseline"))
    columns = ["band", "degrees", "wavelength km", "baseline"] + (["GSNR base"] if has_gsnr else [])
    for name in result.variant_names[1:]:
        columns += [name, f"boost {name}"] + ([f"GSNR {name}"] if has_gsnr else [])
    rows = []
    for b in result.bands:
        row = [b["name"], f"{b['lo']}–{b['hi']}", _km(b["lo"], b["hi"]),
               result.stats["baseline"]["band_means"][b["name"]]]
        if has_gsnr:
            row.append(result.stats["baseline"]["gsnr_band_median"].get(b["name"]))
        for name in result.variant_names[1:]:
            row += [result.stats[name]["band_means"][b["name"]], result.stats["boost"][name][b["name"]]]
            if has_gsnr:
                row.append(result.stats[name]["gsnr_band_median"].get(b["name"]))
        rows.append(row)
    return columns, rows


def _short(name: str) -> str:
    """per_sample(gamma=0.5,eps_frac=0.02) -> γ0.5 ε0.02 (table columns stay narrow)."""
    import re

    m = re.fullmatch(r"per_sample\(gamma=([^,]+),eps_frac=([^)]+)\)", name)
    return f"γ{m.group(1)} ε{m.group(2)}" if m else name


def optimizer_name(result: ProbeResult) -> str:
    return (result.stats.get("optimizer_view", {}).get("optimizer") or result.optimizer or {}).get("name", "unknown")


def _optimizer_line(result: ProbeResult, name: str, view: dict) -> str:
    boost = result.stats.get("boost", {}).get(name, {})
    cos, ratio = view["cosine"], view["adam_step_ratio"]
    spread = [x for band in view["adam_step_ratio_layer_range"].values() for x in band if math.isfinite(x)]
    span = f" (layers and bands {min(spread):.2f}-{max(spread):.2f})" if spread else ""
    parts = [f"raw gradient: high band x{_num(boost.get('high'), '{:.2f}')}",
             f"steady-state Adam step: high band x{_num(ratio.get('high'), '{:.2f}')}, low x{_num(ratio.get('low'), '{:.2f}')}{span}",
             f"direction: cos {_num(cos.get('low'), '{:.2f}')} at low l, {_num(cos.get('high'), '{:.2f}')} at high l"]
    if "all" in view["cosine_groups"]:
        parts[-1] += f", {_num(view['cosine_groups']['all'], '{:.2f}')} in the non-spectral weights"
    if "switch_step_ratio" in view:
        fade = result.stats["optimizer_view"].get("switch_fade", {})
        parts.append(f"switch step (checkpoint's Adam state): high band x{_num(view['switch_step_ratio'].get('high'), '{:.2f}')}, "
                     f"fading over ~{_num(fade.get('steps_to_fraction'), '{:,.0f}')} steps (old second moment to 10%)")
    return f"{_label(name)}: " + "; ".join(parts)


def interpretation(result: ProbeResult, name: str, view: dict, adaptive: bool) -> str:
    """One plain sentence on what the numbers mean for training with that optimizer."""
    boost = result.stats.get("boost", {}).get(name, {}).get("high", math.nan)
    if not adaptive:
        return (f"Under SGD the step follows the raw gradient, so whitening moves the high-degree filters "
                f"{_num(boost, '{:.1f}')}x as far per step.")
    high = view["adam_step_ratio"].get("high", math.nan)
    where = {"low degrees": view["cosine"].get("low", math.nan), "high degrees": view["cosine"].get("high", math.nan),
             "the non-spectral weights": view["cosine_groups"].get("all", math.nan)}
    finite = {k: v for k, v in where.items() if math.isfinite(v)}
    lowest = min(finite, key=finite.get) if finite else None
    near_one = lambda x: math.isfinite(x) and 0.8 <= x <= 1.25  # noqa: E731
    if near_one(high) and near_one(boost):  # nothing for Adam to divide away (e.g. L = 10, one high degree)
        size = "Whitening barely changes the raw high-degree gradient or Adam's step there"
    elif near_one(high):
        size = "Adam divides the larger raw gradient away, so whitening barely changes how far the high-degree filters move"
    else:
        size = f"Adam still changes the high-degree step {_num(high, '{:.2f}')}x, so whitening does change how far those filters move"
    switch = view.get("switch_step_ratio", {}).get("high", math.nan)
    fade = (result.stats.get("optimizer_view") or {}).get("switch_fade", {}).get("steps_to_fraction", math.nan)
    transient = (f" (only right after a switch from the checkpoint's own Adam state is the high-degree step "
                 f"x{switch:.1f}, fading over ~{fade:,.0f} steps)" if math.isfinite(switch) and abs(math.log(switch)) > math.log(1.25)
                 else "")
    if lowest is not None and finite[lowest] < 0.9:
        return (f"{size}{transient}; what it changes is the direction of the updates, most at {lowest} "
                f"(cos {finite[lowest]:.2f}).")
    return f"{size}{transient}, and it barely changes their direction (every cosine >= 0.9)."


def degree_ranges(degrees) -> str:
    """[3, 4, 5, 9] -> "3-5, 9"."""
    out, run = [], []
    for l in sorted(int(d) for d in degrees):
        if run and l == run[-1] + 1:
            run.append(l)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [l]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out) if out else "none"


def _pct(x) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{100 * x:.0f}%" if abs(x) >= 0.01 or x == 0 else f"{100 * x:.1f}%"


def predictability_lines(result: ProbeResult) -> list[str]:
    """Which degrees the model cannot predict (noise-dominated) and how much energy-score weight lands there."""
    p = result.predictability or {}
    chans = p.get("channels") or {}
    if not chans:
        return []
    if not any(c.get("has_reference") for c in chans.values()):
        return ["predictability: no persistence reference for this model's outputs, so R2 by degree is not available"]
    thr, minc = p.get("r2_threshold", math.nan), p.get("min_change", math.nan)
    low = next((b for b in result.bands if b["name"] == "low"), None)
    flagged = "; ".join(f"{ch} l {degree_ranges(c['noise_dominated'])}" for ch, c in chans.items()
                        if c.get("has_reference"))
    parts = [f"predictability (R2 of the change from the input state, per degree): noise-dominated degrees "
             f"(R2 < {thr:g} and change >= {minc:g} of the state's power): {flagged}"]
    if low is not None:
        lows = ", ".join(f"{ch} {_num((p.get('bands') or {}).get(ch, {}).get('low', {}).get('r2'), '{:.2f}')}"
                         for ch, c in chans.items() if c.get("has_reference"))
        n_low = sum((p.get("bands") or {}).get(ch, {}).get("low", {}).get("noise_dominated", 0) for ch in chans)
        high = ", ".join(f"{ch} {_num((p.get('bands') or {}).get(ch, {}).get('high', {}).get('r2'), '{:.2f}')}"
                         for ch, c in chans.items() if c.get("has_reference"))
        parts.append(f"R2 low band (l {low['lo']}-{low['hi']}): {lows} ({'none' if n_low == 0 else n_low} flagged); "
                     f"high band: {high}")
    missing = [ch for ch, c in chans.items() if not c.get("has_reference")]
    if missing:
        parts.append(f"no persistence for {', '.join(missing)} (not model inputs)")
    lines = ["; ".join(parts)]
    shares = p.get("es_weight_share") or {}
    base = shares.get("baseline")
    whitened = [(v, x) for v, x in shares.items() if v != "baseline"]
    if shares:
        if whitened:
            lines.append("; ".join(f"{_label(v)} puts {_pct(x)} of the energy-score weight on degrees where the model "
                                   f"explains < {100 * thr:.0f}% of the change (baseline {_pct(base)})"
                                   for v, x in whitened))
        else:
            lines.append(f"baseline puts {_pct(base)} of the energy-score weight on degrees where the model explains "
                         f"< {100 * thr:.0f}% of the change")
    return lines


def predictability_table(result: ProbeResult):
    """Per channel and band: R2 of the change, spread/skill, noise-dominated degrees; ES weight shares below."""
    from rich.table import Table

    p = result.predictability or {}
    chans = p.get("channels") or {}
    t = Table(title=f"Predictability by degree band (R2 of the change from the input state, band power-weighted; "
                    f"noise-dominated: R2 < {p.get('r2_threshold', math.nan):g}, change >= "
                    f"{p.get('min_change', math.nan):g} of the state)")
    t.add_column("channel")
    for b in result.bands:
        t.add_column(f"{b['name']} l {b['lo']}–{b['hi']}\nR2 · spread/skill · noise", justify="right")
    for ch, c in chans.items():
        row = [ch]
        for b in result.bands:
            v = (p.get("bands") or {}).get(ch, {}).get(b["name"], {})
            if not c.get("has_reference"):
                row.append("no reference")
                continue
            row.append(f"{_num(v.get('r2'), '{:.2f}')} · {_num(v.get('spread_skill'), '{:.2f}')} · "
                       f"{v.get('noise_dominated', 0)}/{v.get('degrees', '?')}")
        t.add_row(*row)
    shares = p.get("es_weight_share") or {}
    if shares:
        t.caption = "energy-score weight on noise-dominated degrees: " + ", ".join(
            f"{_short(v)} {_pct(x)}" for v, x in shares.items())
    return t


def verdict(result: ProbeResult) -> list[str]:
    """Leads with what changes under the checkpoint's training optimizer, then the raw gradient (labelled raw),
    then, for a deterministic model, that its ensemble members are identical."""
    opt_view = result.stats.get("optimizer_view") or {}
    views = opt_view.get("variants") or {}
    extra = [line for line in (deterministic_line(result),) if line]
    extra = predictability_lines(result) + extra
    if not views:  # files written before the optimizer-aware statistics
        return _raw_lines(result) + extra
    opt = opt_view.get("optimizer") or {}
    name = opt.get("name", "unknown")
    adaptive = name.lower().startswith("adam")
    head = (f"under {name} (the optimizer this checkpoint was trained with)" if name != "unknown"
            else "training optimizer not recorded: the Adam view is shown")
    lines = [f"{head}:"] + [f"  {_optimizer_line(result, v, view)}" for v, view in views.items()]
    first = next(iter(views))
    lines.append(interpretation(result, first, views[first], adaptive or name == "unknown"))
    return lines + _raw_lines(result) + extra


def optimizer_table(result: ProbeResult):
    """Per band: raw boost, steady-state Adam step ratio, direction cosine (and switch step with Adam state)."""
    from rich.table import Table

    opt_view = result.stats.get("optimizer_view") or {}
    views = opt_view.get("variants") or {}
    name = (opt_view.get("optimizer") or {}).get("name", "unknown")
    t = Table(title=f"Under the training optimizer ({name}): whitened / baseline raw gradient and steady-state Adam step "
                    f"(band mean; layers: range), direction cosine{', switch step (checkpoint Adam state)' if any('switch_step_ratio' in v for v in views.values()) else ''}")
    t.add_column("variant", no_wrap=True)
    t.add_column("band / weights", no_wrap=True)
    for col in ("raw boost", "Adam step", "layers", "cos", "layers"):
        t.add_column(col, justify="right", no_wrap=True)
    has_switch = any("switch_step_ratio" in v for v in views.values())
    if has_switch:
        t.add_column("switch", justify="right", no_wrap=True)
    for v, view in views.items():
        first_row = True
        for b in result.bands:
            short = _short(v) if first_row else ""
            first_row = False
            bn = b["name"]
            lo_hi = lambda r: f"{_num(r[0], '{:.2f}')}–{_num(r[1], '{:.2f}')}"  # noqa: E731
            row = [short, bn, _num(result.stats["boost"][v][bn], "{:.2f}x"),
                   _num(view["adam_step_ratio"][bn], "{:.3f}x"), lo_hi(view["adam_step_ratio_layer_range"][bn]),
                   _num(view["cosine"][bn], "{:.3f}"), lo_hi(view["cosine_layer_range"][bn])]
            if has_switch:
                row.append(_num(view.get("switch_step_ratio", {}).get(bn), "{:.2f}x"))
            t.add_row(*row)
        for g, c in sorted(view["cosine_groups"].items(), key=lambda kv: kv[0] == "all"):
            row = ["", "all non-spectral" if g == "all" else g, "—", _num(view["adam_step_ratio_groups"].get(g), "{:.3f}x"), "", _num(c, "{:.3f}"), ""]
            if has_switch:
                row.append("")
            t.add_row(*row)
    return t


def band_table(result: ProbeResult):
    from rich.table import Table

    columns, rows = band_rows(result)
    t = Table(title="Raw gradient of the spectral filter weights by degree band (L2 norm, RSS over layers)")
    for i, col in enumerate(columns):
        short = col.replace("per_sample", "ps")
        t.add_column("boost" if col.startswith("boost ") else "GSNR" if col.startswith("GSNR ") and col != "GSNR base"
                     else short, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*row[:3], *(_num(v, "{:.2f}x") if columns[i + 3].startswith("boost ") else _num(v)
                              for i, v in enumerate(row[3:])))
    return t


def layer_table(result: ProbeResult):
    from rich.table import Table

    import os

    names = list(result.grad_by_l["baseline"]["layers"])
    prefix = os.path.commonprefix(names).rpartition(".")[0] + "." if len(names) > 1 else ""
    title = "Per layer: decline ratio (low/high band) and Spearman rho with l"
    t = Table(title=title + (f" ({prefix}…)" if prefix.strip(".") else ""))
    t.add_column("parameter")
    for name in result.variant_names:
        short = name.replace("per_sample", "ps")
        t.add_column(f"{short} ratio", justify="right")
        t.add_column("rho", justify="right")
    for param in names:
        row = [param[len(prefix):] if prefix.strip(".") else param]
        for name in result.variant_names:
            s = result.layer_stats[name][param]
            row += [_num(s["decline_ratio"], "{:.2f}"), _num(s["spearman_rho"], "{:+.2f}")]
        t.add_row(*row)
    return t


def adam_table(result: ProbeResult):
    """fme ckpt.tar: how the optimizer state itself declines with l (low/high band ratios)."""
    from rich.table import Table

    from ..spectral.stats import Band, band_mean

    params = result.adam_by_l.get("parameters", {})
    bands = {b["name"]: Band(b["name"], b["lo"], b["hi"]) for b in result.bands}
    t = Table(title="Adam state per degree (low band / high band)")
    for col in ("parameter", "step", "sqrt(v_hat) ratio", "effective step ratio"):
        t.add_column(col, justify="right" if col != "parameter" else "left")
    for name, a in params.items():
        ratio = lambda key: band_mean(a[key], bands["low"]) / band_mean(a[key], bands["high"])  # noqa: E731
        t.add_row(name, str(a["step"]), _num(ratio("sqrt_v_hat"), "{:.2f}"), _num(ratio("effective_step"), "{:.2f}"))
    return t


def nonfinite_lines(result: ProbeResult) -> list[str]:
    return [f"non-finite gradients: variant {v}, parameter {p}: {n} elements"
            for v, per in result.nonfinite.items() for p, n in per.items()]


@functools.cache
def _report_class():
    """A rich Group that a Jupyter cell displays (rich's Table and Text do; Group alone does not)."""
    from rich.console import Group
    from rich.jupyter import JupyterMixin

    return type("Report", (JupyterMixin, Group), {})


def grad_by_l_report(result: ProbeResult):
    """Everything ``specprobe grad-by-l`` prints, as one rich renderable (a notebook shows it as is)."""
    from rich.text import Text

    parts = []
    if result.provenance.get("data", {}).get("synthetic"):
        parts.append(Text.from_markup(SYNTHETIC_HEADER))
    rollout = result.provenance.get("rollout") or {}
    if rollout.get("n_forward_steps", 1) > 1:
        parts.append(Text(f"loss: fme {rollout['n_forward_steps']}-step training rollout, loss steps "
                          f"{rollout['loss_steps']} weighted {[round(w, 4) for w in rollout['step_weights']]} "
                          f"(optimize_last_step_only={rollout['optimize_last_step_only']}, "
                          f"pushforward_steps={rollout['pushforward_steps']}; {rollout['source']})"))
    # What predicts training first (the optimizer's view), then the raw gradients it is made from.
    if (result.stats.get("optimizer_view") or {}).get("variants"):
        parts.append(optimizer_table(result))
    parts += [band_table(result), layer_table(result)]
    if (result.predictability or {}).get("channels"):
        parts.append(predictability_table(result))
    if result.adam_by_l.get("parameters"):
        parts.append(adam_table(result))
    parts += [Text(line, style="red") for line in nonfinite_lines(result)]
    sampling = sampling_line(result)
    if sampling:
        parts.append(Text(sampling, style="dim"))
    parts += [Text(line, style="bold") for line in verdict(result)]
    return _report_class()(*parts)


def render_grad_by_l(result: ProbeResult, console) -> None:
    console.print(grad_by_l_report(result))
