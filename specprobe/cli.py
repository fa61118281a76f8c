"""The ``specprobe`` command: thin typer commands that parse, call the API and render. No math here.

Every expected failure (bad file, bad option, bad data) prints one line ``error: ...`` on stderr and
exits with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Per-degree gradient probe for spherical neural operators (SFNO): how the spectral "
                       "energy score, with and without per-sample whitening, reaches each degree l.")
_state = {"debug": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors.")):
    _state["debug"] = debug


def _fail(message: str, code: int = 2):
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def _guard(fn):
    """Turn expected failures into one line and exit 2 (unless --debug)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .errors import SpecprobeError

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            typer.echo("error: interrupted; no partial files were written", err=True)
            raise typer.Exit(130)
        except Exception as e:  # noqa: BLE001 - classified below
            if _state["debug"]:
                raise
            if isinstance(e, (SpecprobeError, ValueError)):
                _fail(str(e))
            if type(e).__name__ == "OutOfMemoryError" or "out of memory" in str(e).lower():
                _fail(f"out of memory on the device ({str(e).splitlines()[0][:120]}); try a smaller --batch-size, "
                      "--n-ensemble, or --device cpu")
            if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)):
                _fail(f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}")
            _fail(f"unexpected {type(e).__name__}: {e} (run with --debug for the traceback)")

    return wrapper


def _console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=False, quiet=quiet, width=max(100, Console().width))


def _progress(enabled: bool):
    """A progress bar on stderr, only on a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("probing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task("probe", total=None)
    return bar, (lambda done, total: bar.update(task, completed=done, total=total))


def _degree_axes(items: list[str]) -> dict | None:
    if not items:
        return None
    out = {}
    for item in items:
        pattern, sep, axis = item.rpartition("=")
        if not sep or not pattern:
            _fail(f"--degree-axis: expected PATTERN=AXIS, got {item!r}")
        try:
            out[pattern] = int(axis)
        except ValueError:
            _fail(f"--degree-axis: axis in {item!r} is not an integer")
    return out


@app.command()
@_guard
def info(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint file (default: the bundled model)."),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help="Allow full unpickling (runs code!)."),
):
    """Describe a checkpoint: family, grid, channels, spectral parameters and their degree axis, training."""
    import json

    from .models.registry import describe_checkpoint
    from .report.info import render_info

    desc = describe_checkpoint(checkpoint, trust=trust_checkpoint)
    if as_json:
        typer.echo(json.dumps(desc, indent=1, default=str))
    else:
        render_info(desc, _console())


@app.command("grad-by-l")
@_guard
def grad_by_l(
    checkpoints: Optional[list[Path]] = typer.Argument(None, help="Checkpoint(s) (default: the bundled model). "
                                                       "Several, or a directory of ckpt_NNNN.tar: a series."),
    data: Optional[str] = typer.Option(None, "--data", help="Data source (default: the bundled sample / synthetic)."),
    n_samples: int = typer.Option(8, "--n-samples", help="Samples to probe (>= 2 for GSNR)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Samples per forward pass."),
    n_ensemble: int = typer.Option(2, "--n-ensemble", help="Ensemble members per sample (fme trains with 2)."),
    whitening: Optional[list[str]] = typer.Option(None, "--whitening", help="Variant besides the baseline; "
                                                  "repeatable: none, per_sample, per_sample:gamma=0.8,eps_frac=0.05."),
    bands: Optional[str] = typer.Option(None, "--bands", help="Degree bands, e.g. low=1:8,high=56:63 "
                                        "(default: lowest and highest eighth of degrees)."),
    device: str = typer.Option("auto", "--device", help="auto (GPU when present), cpu, cuda, cuda:i."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("specprobe-out"), "--out", help="Directory for result.json and figures."),
    as_json: bool = typer.Option(False, "--json", help="Print the result JSON on stdout (nothing else there)."),
    quiet: bool = typer.Option(False, "--quiet", help="No tables."),
    fmt: str = typer.Option("png", "--format", help="Figure format: png, svg or pdf."),
    no_timestamp: bool = typer.Option(False, "--no-timestamp", help="Omit time and timings: byte-identical reruns."),
    ema: bool = typer.Option(False, "--ema", help="fme: use the EMA weights."),
    degree_axis: Optional[list[str]] = typer.Option(None, "--degree-axis", help="PATTERN=AXIS: where l is "
                                                    "in parameters matching the glob PATTERN."),
    crps_weight: float = typer.Option(0.0, "--crps-weight", help="Probe the full EnsembleLoss: CRPS weight."),
    energy_score_weight: float = typer.Option(1.0, "--energy-score-weight"),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help="Allow full unpickling (runs code!)."),
):
    """Backpropagate the energy score (baseline and whitened) and bin the filter gradients by degree l."""
    from .probe.api import probe
    from .report.figures import FORMATS, write_figures
    from .report.files import prepare_out_dir, write_json
    from .report.tables import render_grad_by_l

    if fmt not in FORMATS:
        _fail(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    variants = whitening if whitening else ["per_sample"]
    from .probe.engine import as_variants

    as_variants(variants)  # parse errors before any loading
    out_dir = prepare_out_dir(out)
    paths = list(checkpoints or [None])
    if len(paths) > 1 or (paths[0] is not None and Path(paths[0]).is_dir()):
        from .series import run_series

        return run_series(paths, out_dir=out_dir, fmt=fmt, quiet=quiet or as_json, as_json=as_json,
                          probe_kwargs=dict(data=data, variants=variants, n_samples=n_samples,
                                            n_ensemble=n_ensemble, batch_size=batch_size, seed=seed,
                                            device=device, bands=bands, crps_weight=crps_weight,
                                            energy_score_weight=energy_score_weight, ema=ema,
                                            trust_checkpoint=trust_checkpoint,
                                            degree_axis=_degree_axes(degree_axis or []),
                                            command_line=["specprobe", *sys.argv[1:]],
                                            timestamp=not no_timestamp))
    bar, progress = _progress(not quiet and not as_json)
    try:
        if bar:
            bar.start()
        result = probe(paths[0], data=data, variants=variants, n_samples=n_samples, n_ensemble=n_ensemble,
                       batch_size=batch_size, seed=seed, device=device, bands=bands, crps_weight=crps_weight,
                       energy_score_weight=energy_score_weight, ema=ema, trust_checkpoint=trust_checkpoint,
                       degree_axis=_degree_axes(degree_axis or []), progress=progress,
                       command_line=["specprobe", *sys.argv[1:]], timestamp=not no_timestamp)
    finally:
        if bar:
            bar.stop()
    result_dict = result.to_dict()
    write_json(out_dir / "result.json", result_dict)
    figures = write_figures(result, out_dir, fmt)
    if as_json:
        import json

        typer.echo(json.dumps(result_dict, indent=1))
        return
    console = _console(quiet)
    render_grad_by_l(result, console)
    console.print(f"wrote {out_dir / 'result.json'}, " + ", ".join(str(p) for p in figures))


def main():
    app()
