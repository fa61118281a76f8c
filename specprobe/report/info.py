"""``specprobe info`` rendering."""

from __future__ import annotations


def render_info(desc: dict, console) -> None:
    from rich.table import Table

    head = Table(show_header=False, title=f"checkpoint {desc.get('path')}")
    for key in ("family", "format", "format_version", "model_class", "builder_type", "container", "grid", "channels",
                "in_names", "out_names", "n_parameters", "epoch", "optimizer_state", "ema", "training",
                "training_rollout", "sidecar"):
        if key in desc and desc[key] not in (None, "", [], {}):
            value = desc[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, (dict, list)))
            elif isinstance(value, list):
                value = ", ".join(str(v.get("name", v)) if isinstance(v, dict) else str(v) for v in value)
            head.add_row(key, str(value))
    console.print(head)
    inference = desc.get("constructor_inference")
    if inference:
        console.print(constructor_table(desc.get("constructor_args") or {}, inference))
    params = desc.get("spectral_parameters") or []
    if params:
        t = Table(title="parameters with a degree axis (l)")
        for col in ("name", "shape", "dtype", "l axis", "layout", "l=0 bypassed"):
            t.add_column(col)
        for p in params:
            t.add_row(p["name"], "x".join(map(str, p["shape"])), str(p.get("dtype", "")), str(p["degree_axis"]),
                      p.get("layout", ""), "yes" if p.get("l0_bypassed") else "")
        console.print(t)
    for note in desc.get("notes") or []:
        console.print(f"note: {note}")


def constructor_table(args: dict, inference: dict):
    """A torch-harmonics state dict's constructor arguments: inferred from the weights, given, or assumed."""
    from rich.table import Table

    t = Table(title="constructor arguments (verified by load_state_dict(strict=True))")
    for col in ("argument", "value", "how", "from"):
        t.add_column(col)
    for how in ("inferred", "given", "assumed"):
        for name, source in (inference.get(how) or {}).items():
            value = args.get(name)
            t.add_row(name, f"{value:.6g}" if isinstance(value, float) else str(value), how, str(source))
    return t
