"""``--wandb [PROJECT]``: a result's figures, tables, per-degree curves and statistics as a W&B run.

Everything logged comes from the same functions the terminal and the files use: the figures are
``result.plot(name)`` rendered as the CLI writes them, the band table is ``band_rows``, the curves are
the labelled arrays behind ``to_xarray``. The provenance is the run config. A series logs one step
per checkpoint (its epoch when every checkpoint has one), so the probe sits beside training curves.
Offline (``WANDB_MODE=offline``) nothing needs a login or the network.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

from ..errors import SpecprobeError

DEFAULT_PROJECT = "specprobe"


def _wandb():
    try:
        import wandb
    except ImportError:
        raise SpecprobeError("--wandb needs wandb: pip install 'specprobe[wandb]'") from None
    return wandb


def _image(wandb, fig):
    """W&B's own figure conversion goes through pyplot; our figures live outside it, so pass the PNG."""
    from PIL import Image

    from .figures import figure_bytes

    return wandb.Image(Image.open(io.BytesIO(figure_bytes(fig, "png"))))


def _finite(x):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def _curve_tables(wandb, result) -> dict:
    """Per-degree curves: one long-format table per set of dims, plus a line plot per (variant, degree) curve."""
    from .labelled import per_degree_arrays

    coords, arrays = per_degree_arrays(result)
    logged, by_dims = {}, {}
    for a in arrays:
        if a.dims and a.dims[-1] == "degree":
            by_dims.setdefault(a.dims, []).append(a)
    for dims, group in by_dims.items():
        import numpy as np

        columns = list(dims) + [a.name for a in group]
        rows = []
        for idx in np.ndindex(*group[0].values.shape):
            values = [_finite(float(a.values[idx])) for a in group]
            if any(v is not None for v in values):
                rows.append([coords[d][i] for d, i in zip(dims, idx)] + values)
        key = "_".join(d for d in dims if d != "degree") or "degree"
        logged[f"curves/{key}"] = wandb.Table(columns=columns, data=rows)
        if dims == ("variant", "degree"):
            for a in group:
                keep = [i for i in range(len(coords["variant"])) if np.isfinite(a.values[i]).any()]
                if keep:
                    logged[f"plots/{a.name}"] = wandb.plot.line_series(
                        xs=list(coords["degree"]), ys=[[_finite(float(v)) for v in a.values[i]] for i in keep],
                        keys=[coords["variant"][i] for i in keep], title=a.name, xname="degree l")
    return logged


def _statistics(result) -> dict:
    """Flat summary statistics: VARIANT/decline_ratio, VARIANT/band_mean/BAND, ..."""
    from .labelled import summary_arrays

    coords, arrays = summary_arrays(result)
    coords = {**coords, "variant": result.variant_names}
    out = {}
    for a in arrays:
        if a.dims[0] != "variant" or len(a.dims) > 2 or a.dims[-1] in ("layer", "parameter"):
            continue
        for i, v in enumerate(coords["variant"]):
            if len(a.dims) == 1:
                out[f"{v}/{a.name}"] = _finite(float(a.values[i]))
            else:
                for j, b in enumerate(coords[a.dims[1]]):
                    out[f"{v}/{a.name}/{b}"] = _finite(float(a.values[i, j]))
    return {k: v for k, v in out.items() if v is not None}


def _grad_by_l_payload(wandb, view) -> dict:
    from .tables import band_rows

    columns, rows = band_rows(view.data)
    payload = {f"figures/{name}": _image(wandb, view.plot(name)) for name in view.figure_names}
    payload["band_table"] = wandb.Table(columns=columns, data=[[_finite(v) if not isinstance(v, str) else v
                                                                for v in row] for row in rows])
    payload.update(_curve_tables(wandb, view.data))
    return payload


def _config(view) -> dict:
    data = view.data.provenance if view.kind == "grad-by-l" else view.data.get("provenance") or {}
    return {"specprobe_kind": view.kind, **data}


def _series_steps(rows) -> list[int]:
    """W&B steps must increase: the epochs when every checkpoint has a distinct increasing one, else 0, 1, 2..."""
    epochs = [r.get("epoch") for r in rows]
    if all(isinstance(e, int) for e in epochs) and all(a < b for a, b in zip(epochs, epochs[1:])):
        return epochs
    return list(range(len(rows)))


def log_to_wandb(view, project: str | None = None, *, run_dir=None, name: str | None = None) -> Path:
    """Log a loaded result (``specprobe.load_result(...)``) as one W&B run; returns the run's directory."""
    wandb = _wandb()
    run_dir = Path(os.environ.get("WANDB_DIR") or run_dir or ".")
    run_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project or DEFAULT_PROJECT, name=name, job_type=f"specprobe-{view.kind}",
                     config=_config(view), dir=str(run_dir), reinit="create_new",
                     settings=wandb.Settings(console="off", silent=True, save_code=False, disable_git=True,
                                             x_disable_stats=True))
    try:
        if view.kind == "grad-by-l":
            run.log(_grad_by_l_payload(wandb, view))
            run.summary.update(_statistics(view.data))
        elif view.kind == "series":
            _log_series(wandb, run, view)
        else:
            payload = {f"figures/{n}": _image(wandb, view.plot(n)) for n in view.figure_names}
            for i, table in enumerate(_tables_of(view.table())):  # a report may group several tables
                payload["table" if i == 0 else f"table_{i}"] = _rich_to_wandb(wandb, table)
            if view.kind == "lookahead":
                rec = view.recommendation
                run.summary.update({"recommendation": rec.get("summary"), "chosen": rec.get("chosen")})
            if view.kind == "sweep" and view.probe is not None:
                payload.update(_curve_tables(wandb, view.probe.data))
                run.summary.update(_statistics(view.probe.data))
            run.log(payload)
        return Path(run.dir).parent
    finally:
        run.finish()


def _log_series(wandb, run, view) -> None:
    rows, results = view.data["rows"], view.results
    steps = _series_steps(rows)
    for i, (row, step) in enumerate(zip(rows, steps)):
        payload = {"epoch": row.get("epoch"), "high_band_share": row["high_band_share"],
                   "decline_ratio": row["decline_ratio"],
                   **{f"gsnr_band_median/{b}": v for b, v in row["gsnr_band_median"].items()},
                   **{f"high_band_boost/{v}": b for v, b in row["high_band_boost"].items()}}
        payload = {k: v for k, v in payload.items() if _finite(v) is not None}
        if results:
            payload.update(_grad_by_l_payload(wandb, results[i]))
        if i == len(rows) - 1:
            payload["figures/series"] = _image(wandb, view.plot("series"))
            payload["series_table"] = _rich_to_wandb(wandb, view.table())
        run.log(payload, step=step)


def _tables_of(renderable) -> list:
    """The rich Tables of a renderable: itself, or those of a Group."""
    if hasattr(renderable, "columns"):
        return [renderable]
    return [r for r in getattr(renderable, "renderables", []) if hasattr(r, "columns")]


def _rich_to_wandb(wandb, table):
    """A rich Table's cells as a W&B table (the sweep, series and coupling tables are strings already)."""
    columns = [str(c.header).replace("\n", " ") for c in table.columns]
    cells = [list(c.cells) for c in table.columns]
    return wandb.Table(columns=columns, data=[list(map(str, row)) for row in zip(*cells)])
