"""Terminal tables and the two-line verdict, from a ProbeResult (rich)."""

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


def verdict(result: ProbeResult) -> list[str]:
    """Two lines: the baseline decline, and what each whitening variant does to the high band (and a third
    for a deterministic model)."""
    st = result.stats["baseline"]
    bands = {b["name"]: b for b in result.bands}
    low, high = bands["low"], bands["high"]
    ratio = st["decline_ratio"]
    word = "falls" if ratio > 1 else "rises"
    factor = ratio if ratio > 1 else 1 / ratio if ratio else math.nan
    line1 = (f"gradient {word} {_num(factor, '{:.1f}')}x from l<={low['hi']} to l>={high['lo']} "
             f"(Spearman rho {_num(st['spearman_rho'], '{:+.2f}')}, log-log slope {_num(st['loglog_slope'], '{:+.2f}')})")
    lifts = []
    for name, boost in result.stats.get("boost", {}).items():
        label = name.replace("per_sample(", "whitening ").rstrip(")").replace(",eps_frac=", " eps_frac=")
        lifts.append(f"{label} lifts the high band {_num(boost['high'], '{:.1f}')}x (low band {_num(boost['low'], '{:.2f}')}x)")
    line2 = "; ".join(lifts) if lifts else "no whitening variant probed (add --whitening per_sample)"
    line3 = deterministic_line(result)
    return [line1, line2] + ([line3] if line3 else [])


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


def band_table(result: ProbeResult):
    from rich.table import Table

    columns, rows = band_rows(result)
    t = Table(title="Gradient of the spectral filter weights by degree band (L2 norm, RSS over layers)")
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
    parts += [band_table(result), layer_table(result)]
    if result.adam_by_l.get("parameters"):
        parts.append(adam_table(result))
    parts += [Text(line, style="red") for line in nonfinite_lines(result)]
    parts += [Text(line, style="bold") for line in verdict(result)]
    return _report_class()(*parts)


def render_grad_by_l(result: ProbeResult, console) -> None:
    console.print(grad_by_l_report(result))
