"""specprobe from Python, as a notebook uses it (run top to bottom, or cell by cell at the # %% marks).

    python examples/notebook.py [OUT_DIR]

Probes the bundled shallow-water SFNO, then shows the result object: its tables, its figures (the
ones `specprobe grad-by-l` writes), its xarray Dataset, and a result file loaded back. Writes the
figures and result files to OUT_DIR (default: a new temporary directory). tests/test_notebook_api.py
runs it.
"""

# %% Probe, and wrap the result
import sys
import tempfile
from pathlib import Path

import specprobe

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="specprobe-notebook-"))
out.mkdir(parents=True, exist_ok=True)

probe = specprobe.probe(None, variants=["per_sample", "per_sample:gamma=1"], n_samples=4, threads=1)
result = specprobe.load_result(probe)  # also takes a result.json, sweep.json, series.json, coupling.json
print(result)

# %% The tables grad-by-l prints (a notebook cell displays the renderable as is)
from rich.console import Console

Console(width=130).print(result.table())

# %% The figures: the same matplotlib Figures the CLI saves as NAME.png
for name in result.figure_names:
    fig = result.plot(name)
    fig.savefig(out / f"{name}.png", dpi=100, bbox_inches="tight")
print("figures:", ", ".join(result.figure_names))

# %% Labelled arrays: dims variant, degree, channel, layer (plus band and parameter for statistics)
ds = result.to_xarray()
curve = ds.grad_by_l.sel(variant="baseline")
print(f"baseline gradient at l=1..4: {curve.sel(degree=slice(1, 4)).values}")
print(f"wavelength of l=63: {float(ds.wavelength_km.sel(degree=63)):.0f} {ds.wavelength_km.attrs['units']}")
boost = ds.band_mean.sel(band="high") / ds.band_mean.sel(band="high", variant="baseline")
for variant, value in zip(boost.variant.values, boost.values):
    print(f"high-band boost of {variant}: {value:.2f}x")
per_layer = ds.grad_by_l_layers.sel(variant="baseline").isel(degree=slice(1, None))
print("per-layer low/high ratio:", (per_layer.isel(degree=slice(0, 8)).mean("degree")
                                   / per_layer.isel(degree=slice(-8, None)).mean("degree")).round(1).values)

# %% Files load the same way, and give the same Dataset
(out / "result.json").write_text(probe.to_json(indent=1))
again = specprobe.load_result(out / "result.json")
assert again.to_xarray().identical(ds), "a result file should load back to the same Dataset"
result.write_netcdf(out / "result.nc")
print(f"wrote {out}")
