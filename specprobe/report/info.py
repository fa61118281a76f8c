"""``specprobe info`` rendering."""

from __future__ import annotations


def render_info(desc: dict, console) -> None:
    from rich.table import Table

    head = Table(show_header=False, title=f"checkpoint {desc.get('path')}")
    for key in ("family", "format", "format_version", "model_class", "builder_type", "grid", "channels",
                "in_names", "out_names", "n_parameters", "epoch", "optimizer_state", "ema", "training", "training_rollout"):
        if key in desc and desc[key] not in (None, "", [], {}):
            value = desc[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, (dict, list)))
            elif isinstance(value, list):
                value = ", ".join(map(str, value))
            head.add_row(key, str(value))
    console.print(head)
    params = desc.get("spectral_parameters") or []
    if params:
        t = Table(title="parameters with a degree axis (l)")
        for col in ("name", "shape", "dtype", "l axis", "layout", "l=0 bypassed"):
            t.add_column(col)
        for p in params:
            t.add_row(p["name"], "x".join(map(str, p["shape"])), str(p.get("dtype", "")), str(p["degree_axis"]),
                      p.get("layout", ""), "yes" if p.get("l0_bypassed") else "")
        console.print(t)
