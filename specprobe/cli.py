"""The ``specprobe`` command: thin typer commands that parse, call the API and render. No math here.

Every expected failure (bad file, bad option, bad data) prints one line ``error: ...`` on stderr and
exits with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
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
    from .probing.distributed import env_rank

    if env_rank() == 0:  # under torchrun every rank meets the same bad option; one says so
        typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def _guard(fn):
    """Turn expected failures into one line and exit 2 (unless --debug).

    Under torchrun a failure on any rank is agreed on by all of them (specprobe.probing.distributed):
    every rank exits non-zero and rank 0 alone prints ``error: rank R: message``.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .probing import distributed as dist

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            if dist.env_rank() == 0:
                typer.echo("error: interrupted; no partial files were written", err=True)
            raise typer.Exit(130)
        except Exception as e:  # noqa: BLE001 - classified below
            if _state["debug"]:
                raise
            if not dist.launched():
                _fail(_message_of(e))
            failure = e if isinstance(e, dist.RankFailure) else dist.fail(2, _message_of(e))
            dist.conclude(failure, lambda line: typer.echo(f"error: {' '.join(line.split())}", err=True))
            raise typer.Exit(failure.code)

    return wrapper


def _message_of(e: Exception) -> str:
    """One line for an expected failure; the type and --debug hint for anything else."""
    from .errors import SpecprobeError

    if isinstance(e, (SpecprobeError, ValueError)):
        return str(e)
    if type(e).__name__ == "OutOfMemoryError" or "out of memory" in str(e).lower():
        return (f"out of memory on the device ({str(e).splitlines()[0][:120]}); try a smaller --batch-size, "
                "--n-ensemble, or --device cpu")
    if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}"
    return f"unexpected {type(e).__name__}: {e} (run with --debug for the traceback)"


def _start_world(device: str):
    """Under torchrun: join the process group before any work, so a rank that fails is heard."""
    from .probing import distributed as dist

    return dist.start(device, new_command=True)


def _writes(world) -> bool:
    """The barrier before writing: all ranks are healthy here; only rank 0 writes and prints."""
    if world is None:
        return True
    world.finish_exchanges()
    return world.is_writer


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


def _check_format(fmt: str) -> None:
    from .report.figures import FORMATS

    if fmt not in FORMATS:
        _fail(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")


def _load_options(*, trust: bool = False, ema: bool = False, degree_axis: list[str] | None = None, grid=None,
                  scale_factor=None, n_forward_steps=None, optimize_last_step_only=None, pushforward_steps=None,
                  time_start=None, time_stop=None):
    """The checkpoint options a command was given, as one validated LoadOptions (unset ones stay None:
    fme options then follow the run's training config)."""
    from .models.options import LoadOptions

    return LoadOptions.from_kwargs(trust=trust, ema=ema, degree_axis=_degree_axes(degree_axis or []), grid=grid,
                                   scale_factor=scale_factor, n_forward_steps=n_forward_steps,
                                   optimize_last_step_only=optimize_last_step_only,
                                   pushforward_steps=pushforward_steps, time_start=time_start, time_stop=time_stop)


_N_FORWARD_STEPS_HELP = ("fme: probe the loss of a K-step training rollout, fme's own stepping and step weights "
                         "(default: the run's training config, see `specprobe info`).")
_LAST_STEP_HELP = "fme rollout: loss on the last step only (default: the run's training config)."
_PUSHFORWARD_HELP = "fme rollout: initial steps run without gradient and loss (default: the run's training config)."


_NETCDF_HELP = "Also write the result as an xarray Dataset in netCDF (needs specprobe[xarray])."
_WANDB_HELP = ("Log figures, tables, per-degree curves and statistics to Weights & Biases, project PROJECT "
               "(default 'specprobe'; needs specprobe[wandb]). Put a bare --wandb last or write --wandb=PROJECT.")


def _wandb_bare(argv: list[str]) -> list[str]:
    """``--wandb`` with no value means the default project: click options cannot take an optional
    value, so a bare one (last, or before another option or an existing path) gets it here."""
    from .report.wandb_log import DEFAULT_PROJECT

    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == "--wandb":
            nxt = out[i + 1] if i + 1 < len(out) else None
            if nxt is None or nxt.startswith("-") or Path(nxt).exists():
                out[i] = f"--wandb={DEFAULT_PROJECT}"
    return out


def _check_extras(netcdf: bool, wandb_project: Optional[str]) -> None:
    """Missing optional packages fail before the probe runs, not after."""
    from importlib.util import find_spec

    if netcdf and not (find_spec("xarray") and find_spec("netCDF4")):
        _fail("--netcdf needs xarray and netCDF4: pip install 'specprobe[xarray]'")
    if wandb_project and not find_spec("wandb"):
        _fail("--wandb needs wandb: pip install 'specprobe[wandb]'")


def _publish(view, out_dir: Path, nc_name: str, netcdf: bool, wandb_project: Optional[str]) -> list:
    """The optional outputs every command shares: NAME.nc (atomic) and a W&B run."""
    written = []
    if netcdf:
        written.append(view.write_netcdf(out_dir / nc_name))
    if wandb_project:
        from .report.wandb_log import log_to_wandb

        written.append(log_to_wandb(view, wandb_project, run_dir=out_dir))
    return written


def _emit(view, out_dir: Path, *, fmt: str, netcdf: bool, wandb_project: Optional[str], as_json: bool,
          quiet: bool = False, before=(), after=(), wrote_also: str = "") -> None:
    """The one output path of every command that writes a result: NAME.json (the view's file), its figures,
    the optional NAME.nc and W&B run; then the JSON on stdout (``--json``) or the table and what was written."""
    import json

    from .report.files import write_json

    payload = view.to_dict()
    path = out_dir / view.file_name
    write_json(path, payload)
    written = view.write_figures(out_dir, fmt) + _publish(view, out_dir, Path(view.file_name).stem + ".nc", netcdf,
                                                          wandb_project)
    if as_json:
        typer.echo(json.dumps(payload, indent=1))
        return
    console = _console(quiet)
    for line in before:
        console.print(line)
    console.print(view.table())
    for line in after:
        console.print(line)
    console.print(f"wrote {path}, " + ", ".join(map(str, written)) + wrote_also)


def _moment_elements(text: str) -> int | None:
    """``--moment-elements N|all``: None keeps every element's second moment."""
    from .errors import SpecprobeError

    if text.strip().lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 2:
        raise SpecprobeError(f"--moment-elements: expected an integer >= 2 or 'all', got {text!r}")
    return n


def _degree_axes(items: list[str]) -> dict | None:
    """``--degree-axis PATTERN=AXIS`` (AXIS an integer, or ``none`` for "not per-degree")."""
    if not items:
        return None
    from .models.fme.layouts import parse_degree_axis_overrides

    return parse_degree_axis_overrides(items)


# Options several commands share, one definition each (typer reads them from the signature's defaults).
def _n_forward_steps_option():
    return typer.Option(None, "--n-forward-steps", help=_N_FORWARD_STEPS_HELP)


def _last_step_option():
    return typer.Option(None, "--optimize-last-step-only/--optimize-every-step", help=_LAST_STEP_HELP)


def _pushforward_option():
    return typer.Option(None, "--pushforward-steps", help=_PUSHFORWARD_HELP)


def _netcdf_option():
    return typer.Option(False, "--netcdf", help=_NETCDF_HELP)


def _other_params_option():
    return typer.Option("all", "--other-params", help="Variants that also differentiate the non-spectral parameters: "
                        "all, baseline or none (faster; per-degree results unchanged).")


def _moment_elements_option():
    return typer.Option("4096", "--moment-elements", help="Elements per degree and parameter that keep a per-element "
                        "variance for GSNR and Adam steps; larger filters use a seeded sample and report standard "
                        "errors. 'all': exact, 4 more bytes per element per variant.")


def _wandb_option():
    return typer.Option(None, "--wandb", metavar="[PROJECT]", help=_WANDB_HELP)


def _grid_option():
    return typer.Option(None, "--grid", help="torch-harmonics state dict: the data grid the weights cannot tell, "
                        "NLATxNLON[:equiangular|legendre-gauss] (grid type default: equiangular).")


def _scale_factor_option():
    return typer.Option(None, "--scale-factor", help="torch-harmonics state dict: the SFNO's scale_factor, "
                        "where the weights cannot tell it.")


@app.command()
@_guard
def info(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint file (default: the bundled model)."),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help="Allow full unpickling (runs code!)."),
    grid: Optional[str] = _grid_option(),
    scale_factor: Optional[int] = _scale_factor_option(),
):
    """Describe a checkpoint: family, grid, channels, spectral parameters and their degree axis, training."""
    import json

    from .models.registry import describe_checkpoint
    from .report.info import render_info

    desc = describe_checkpoint(checkpoint, _load_options(trust=trust_checkpoint, grid=grid, scale_factor=scale_factor))
    if as_json:
        typer.echo(json.dumps(desc, indent=1, default=str))
    else:
        render_info(desc, _console())


@app.command("grad-by-l")
@_guard
def grad_by_l(
    checkpoints: Optional[list[Path]] = typer.Argument(None, help="Checkpoint(s) (default: the bundled model). "
                                                       "Several, or a directory of ckpt_NNNN.tar: a series."),
    data: Optional[str] = typer.Option(None, "--data", help="Data (default: the bundled sample / synthetic). fme: "
                                       "netCDF file, directory or glob; zarr store; data YAML; config:train or "
                                       "config:validation (the experiment's config.yaml)."),
    n_samples: int = typer.Option(8, "--n-samples", help="Samples to probe (>= 2 for GSNR)."),
    batch_size: int = typer.Option(1, "--batch-size", help="Samples per forward pass (per-sample gradients "
                                   "backpropagate the whole batch graph, so 1 is fastest on CPU)."),
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
    no_timestamp: bool = typer.Option(False, "--no-timestamp", help="Omit time and timings, and use 1 CPU thread "
                                      "unless --threads is given: byte-identical reruns."),
    ema: bool = typer.Option(False, "--ema", help="fme: use the EMA weights."),
    degree_axis: Optional[list[str]] = typer.Option(None, "--degree-axis", help="PATTERN=AXIS: where l is "
                                                    "in parameters matching the glob PATTERN (AXIS 'none': not per-degree)."),
    time_start: Optional[str] = typer.Option(None, "--time-start", help="fme data: first initial time (inclusive; "
                                             "fme's subset.start_time)."),
    time_stop: Optional[str] = typer.Option(None, "--time-stop", help="fme data: last initial time (inclusive; "
                                            "fme's subset.stop_time)."),
    crps_weight: float = typer.Option(0.0, "--crps-weight", help="Probe the full EnsembleLoss: CRPS weight."),
    energy_score_weight: float = typer.Option(1.0, "--energy-score-weight"),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help="Allow full unpickling (runs code!)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the idle cores)."),
    n_forward_steps: Optional[int] = _n_forward_steps_option(),
    optimize_last_step_only: Optional[bool] = _last_step_option(),
    pushforward_steps: Optional[int] = _pushforward_option(),
    grid: Optional[str] = _grid_option(),
    scale_factor: Optional[int] = _scale_factor_option(),
    netcdf: bool = _netcdf_option(),
    wandb_project: Optional[str] = _wandb_option(),
    other_params: str = _other_params_option(),
    moment_elements: str = _moment_elements_option(),
    r2_threshold: float = typer.Option(0.1, "--r2-threshold", help="Noise-dominated degrees: the model's R2 of the "
                                       "change from the input state is below this (default 0.1: < 10% explained)."),
    min_change: float = typer.Option(0.1, "--min-change", help="...and the target's one-step change is at least this "
                                     "fraction of the state's power at that degree (keeps slow large scales out)."),
):
    """Backpropagate the energy score (baseline and whitened) and bin the filter gradients by degree l.

    CHECKPOINTS may name a bundled model: bundled (= bundled:swe, the default) or bundled:noisy."""
    from .probing.api import probe
    from .probing.settings import LossSettings, ProbeSettings
    from .report.files import prepare_out_dir
    from .report.results import load_result

    _check_format(fmt)
    _check_extras(netcdf, wandb_project)
    # validated once, here: errors before any loading, and the engine takes the settings as they are
    settings = ProbeSettings(variants=tuple(whitening or ["per_sample"]), n_samples=n_samples, n_ensemble=n_ensemble,
                             batch_size=batch_size, seed=seed, bands=bands, other_params=other_params,
                             loss=LossSettings(crps_weight=crps_weight, energy_score_weight=energy_score_weight),
                             moment_elements=_moment_elements(moment_elements), r2_threshold=r2_threshold,
                             min_change=min_change)
    options = _load_options(trust=trust_checkpoint, ema=ema, degree_axis=degree_axis, grid=grid,
                            scale_factor=scale_factor, n_forward_steps=n_forward_steps,
                            optimize_last_step_only=optimize_last_step_only, pushforward_steps=pushforward_steps,
                            time_start=time_start, time_stop=time_stop)
    world = _start_world(device)
    out_dir = prepare_out_dir(out) if world is None or world.is_writer else out
    paths = list(checkpoints or [None])
    probe_kwargs = dict(settings=settings, options=options, data=data, device=device, threads=threads,
                        command_line=["specprobe", *sys.argv[1:]], timestamp=not no_timestamp)
    if len(paths) > 1 or (paths[0] is not None and Path(paths[0]).is_dir()):
        return _series(paths, out_dir, fmt, quiet, as_json, probe_kwargs, netcdf, wandb_project, world)
    bar, progress = _progress(not quiet and not as_json and (world is None or world.is_writer))
    try:
        if bar:
            bar.start()
        result = probe(paths[0], progress=progress, **probe_kwargs)
    finally:
        if bar:
            bar.stop()
    if not _writes(world):
        return
    _emit(load_result(result), out_dir, fmt=fmt, netcdf=netcdf, wandb_project=wandb_project, as_json=as_json,
          quiet=quiet)


def _series(paths, out_dir, fmt, quiet, as_json, probe_kwargs, netcdf, wandb_project, world):
    """Several checkpoints (or a directory of ckpt_NNNN.tar) on the same batches and seed."""
    from .probing.series import probe_series, series_summary
    from .report.files import write_json
    from .report.results import SeriesResult, load_result

    result_files = []

    def started(i, n, path):
        if not quiet and not as_json and (world is None or world.is_writer):
            typer.echo(f"[{i + 1}/{n}] probing {path}", err=True)

    def write_one(i, path, result):
        sub = out_dir / f"{i:03d}_{Path(path).stem}"
        sub.mkdir(exist_ok=True)
        write_json(sub / "result.json", result.to_dict())
        load_result(result).write_figures(sub, fmt)
        result_files.append(f"{sub.name}/result.json")

    # One process: each result is written as it comes; under torchrun, after the barrier, by rank 0.
    items = probe_series(paths, on_start=started, on_result=write_one if world is None else None, **probe_kwargs)
    if not _writes(world):
        return
    if world is not None:
        for i, (path, result) in enumerate(items):
            write_one(i, path, result)
    summary = series_summary(items, result_files)
    _emit(SeriesResult(summary, out_dir / "series.json"), out_dir, fmt=fmt, netcdf=netcdf, wandb_project=wandb_project,
          as_json=as_json, quiet=quiet, wrote_also=" and one result per checkpoint")


@app.command()
@_guard
def compare(
    results: list[Path] = typer.Argument(..., help="result.json files from grad-by-l, or lookahead.json files."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated labels, one per file."),
    normalize: str = typer.Option("none", "--normalize", help="none, low-band or total."),
    variant: str = typer.Option("baseline", "--variant", help="Which variant's curve to overlay."),
    out: Path = typer.Option(Path("compare.png"), "--out", help="Figure file (format from its suffix)."),
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON."),
    max_cost: Optional[str] = typer.Option(None, "--max-cost", help="lookahead.json files: recompute each "
                                           "recommendation with this low-band cost limit (percent, or 'spread'; "
                                           "default: the lookahead's default rule)."),
):
    """Overlay the per-degree curves of several result files and tabulate their statistics; for
    lookahead.json files, recompute each sweep's recommendation from the file (--max-cost)."""
    import json

    from .report.compare import (NORMALIZE, compare_optimizer_table, compare_rows, compare_table, is_lookahead_file,
                                 labels_for, load_results, plot_compare)
    from .report.figures import FORMATS

    if any(is_lookahead_file(p) for p in results):
        from .probing.recommend import Rule
        from .report.compare import lookahead_compare_rows, lookahead_compare_table

        rule = Rule(max_cost=_max_cost_option(max_cost)) if max_cost is not None else None
        rows = lookahead_compare_rows(results, labels_for(results, labels), rule)
        if as_json:
            from .probing.result import json_safe

            typer.echo(json.dumps(json_safe([{k: v for k, v in r.items() if k != "sweep"} for r in rows]), indent=1))
            return
        console = _console()
        console.print(lookahead_compare_table(rows))
        for r in rows:
            console.print(f"{r['label']}: {r['recommendation']['summary']}")
        return
    if max_cost is not None:
        _fail("--max-cost recomputes the recommendation of lookahead.json files; these are grad-by-l results")

    if normalize not in NORMALIZE:
        _fail(f"--normalize: expected one of {', '.join(NORMALIZE)}, got {normalize!r}")
    fmt = out.suffix.lstrip(".") or "png"
    if fmt not in FORMATS:
        _fail(f"--out {out}: figure suffix must be one of {', '.join(FORMATS)}")
    loaded = load_results(results)
    names = labels_for(results, labels)
    from .report.files import prepare_out_dir

    prepare_out_dir(out.parent if str(out.parent) else Path("."))
    plot_compare(loaded, names, out, variant=variant, normalize=normalize, fmt=fmt)
    rows = compare_rows(loaded, names)
    if as_json:
        from .probing.result import json_safe

        typer.echo(json.dumps(json_safe(rows), indent=1))
        return
    console = _console()
    console.print(compare_table(rows))
    if any(r["high_band_boost"] for r in rows):
        console.print(compare_optimizer_table(rows))
    console.print(f"wrote {out}")


@app.command()
@_guard
def sweep(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint (default: the bundled model)."),
    gamma: str = typer.Option("0.2,0.5,0.8,1", "--gamma", help="Comma-separated exponents in (0, 1]."),
    eps_frac: str = typer.Option("0.02", "--eps-frac", help="Comma-separated amplitude floors > 0."),
    data: Optional[str] = typer.Option(None, "--data"),
    n_samples: int = typer.Option(8, "--n-samples"),
    batch_size: int = typer.Option(1, "--batch-size"),
    n_ensemble: int = typer.Option(2, "--n-ensemble"),
    bands: Optional[str] = typer.Option(None, "--bands"),
    device: str = typer.Option("auto", "--device"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("specprobe-out"), "--out"),
    as_json: bool = typer.Option(False, "--json"),
    fmt: str = typer.Option("png", "--format"),
    no_timestamp: bool = typer.Option(False, "--no-timestamp"),
    ema: bool = typer.Option(False, "--ema"),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the idle cores)."),
    n_forward_steps: Optional[int] = _n_forward_steps_option(),
    optimize_last_step_only: Optional[bool] = _last_step_option(),
    pushforward_steps: Optional[int] = _pushforward_option(),
    grid: Optional[str] = _grid_option(),
    scale_factor: Optional[int] = _scale_factor_option(),
    netcdf: bool = _netcdf_option(),
    wandb_project: Optional[str] = _wandb_option(),
    other_params: str = _other_params_option(),
    moment_elements: str = _moment_elements_option(),
):
    """The gradient pre-screen (no training): measured and predicted gradient boost per (gamma, eps_frac).

    Per band, with the optimizer view (Adam step ratio, direction cosine): what whitening does to the gradients. Which gamma to train with is the lookahead sweep's answer: `specprobe lookahead --gamma ...`.
    """  # noqa: E501 - one line: --help reflows it
    from .probing.api import probe
    from .probing.settings import ProbeSettings
    from .probing.sweep import parse_floats, summarise_sweep, sweep_configs
    from .report.files import prepare_out_dir
    from .report.results import SweepResult

    _check_format(fmt)
    _check_extras(netcdf, wandb_project)
    configs = sweep_configs(parse_floats(gamma, "--gamma"), parse_floats(eps_frac, "--eps-frac"))
    settings = ProbeSettings(variants=tuple(configs), n_samples=n_samples, n_ensemble=n_ensemble,
                             batch_size=batch_size, seed=seed, bands=bands, other_params=other_params,
                             moment_elements=_moment_elements(moment_elements))
    options = _load_options(trust=trust_checkpoint, ema=ema, grid=grid, scale_factor=scale_factor,
                            n_forward_steps=n_forward_steps, optimize_last_step_only=optimize_last_step_only,
                            pushforward_steps=pushforward_steps)
    world = _start_world(device)
    out_dir = prepare_out_dir(out) if world is None or world.is_writer else out
    result = probe(checkpoint, settings=settings, options=options, data=data, device=device, threads=threads,
                   command_line=["specprobe", *sys.argv[1:]], timestamp=not no_timestamp)
    if not _writes(world):
        return
    summary = summarise_sweep(result, configs)
    _emit(SweepResult(summary, out_dir / "sweep.json"), out_dir, fmt=fmt, netcdf=netcdf, wandb_project=wandb_project,
          as_json=as_json, after=["this is the gradient pre-screen (no training); for the decision -- which gamma to "
                                  "train with, at what cost -- run the lookahead sweep: specprobe lookahead --gamma "
                                  f"0,{gamma}"])


@app.command()
@_guard
def coupling(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint (default: the bundled model)."),
    whitening: str = typer.Option("per_sample", "--whitening", help="Whitened variant besides the baseline."),
    n_bands: int = typer.Option(8, "--n-bands", help="Bands of loss degrees."),
    data: Optional[str] = typer.Option(None, "--data"),
    n_samples: int = typer.Option(4, "--n-samples"),
    batch_size: int = typer.Option(4, "--batch-size"),
    n_ensemble: int = typer.Option(2, "--n-ensemble"),
    device: str = typer.Option("auto", "--device"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("specprobe-out"), "--out"),
    as_json: bool = typer.Option(False, "--json"),
    fmt: str = typer.Option("png", "--format"),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the idle cores)."),
    n_forward_steps: Optional[int] = _n_forward_steps_option(),
    optimize_last_step_only: Optional[bool] = _last_step_option(),
    pushforward_steps: Optional[int] = _pushforward_option(),
    grid: Optional[str] = _grid_option(),
    scale_factor: Optional[int] = _scale_factor_option(),
    netcdf: bool = _netcdf_option(),
    wandb_project: Optional[str] = _wandb_option(),
):
    """Loss-band x parameter-degree matrix: how much a small-scale loss reaches small-scale weights."""

    from .probing.context import RunContext
    from .probing.coupling import run_coupling
    from .report.files import prepare_out_dir
    from .report.results import CouplingResult

    _check_format(fmt)
    _check_extras(netcdf, wandb_project)
    options = _load_options(trust=trust_checkpoint, grid=grid, scale_factor=scale_factor,
                            n_forward_steps=n_forward_steps, optimize_last_step_only=optimize_last_step_only,
                            pushforward_steps=pushforward_steps)
    _start_world(device)
    ctx = RunContext.start(checkpoint, device=device, threads=threads)
    world = ctx.world
    out_dir = prepare_out_dir(out) if world is None or world.is_writer else out
    target = ctx.load(options)
    result = run_coupling(target, data=data, variants=[whitening], n_samples=n_samples, n_ensemble=n_ensemble,
                          batch_size=batch_size, seed=seed, n_bands=n_bands, shard=ctx.shard())
    synthetic = data is None and bool(target.describe().get("synthetic_data"))
    result["provenance"] = ctx.provenance(target, split="samples: batch index % world_size")
    result["provenance"].update({
        "seed": seed, "n_samples": n_samples, "n_ensemble": n_ensemble, **options.given(),
        "rollout": target.rollout.describe() if hasattr(target, "rollout") else {"n_forward_steps": 1},
        "data": {"source": "synthetic" if synthetic else str(data or "bundled/default"), "synthetic": synthetic}})
    if not _writes(world):
        return
    from .report.tables import SYNTHETIC_HEADER

    _emit(CouplingResult(result, out_dir / "coupling.json"), out_dir, fmt=fmt, netcdf=netcdf,
          wandb_project=wandb_project, as_json=as_json, before=[SYNTHETIC_HEADER] if synthetic else [])


@app.command()
@_guard
def lookahead(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint (default: the bundled model)."),
    gamma: Optional[str] = typer.Option(None, "--gamma", help="The lookahead sweep: comma-separated whitening "
                                        "exponents in [0, 1], 0 = the baseline arm (default, with no --whitening: "
                                        "0,0.2,0.5,0.8,1)."),
    eps_frac: Optional[str] = typer.Option(None, "--eps-frac", help="Comma-separated amplitude floors > 0 (default "
                                           "0.02); with --gamma, every gamma with every eps_frac."),
    whitening: Optional[list[str]] = typer.Option(None, "--whitening", help="An arm besides the baseline, e.g. "
                                                  "per_sample:gamma=0.8,eps_frac=0.05; repeatable, adds to --gamma."),
    steps: int = typer.Option(40, "--steps", help="Optimizer steps per arm (default 40: see docs/lookahead.md)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Training pairs per step."),
    n_ensemble: Optional[int] = typer.Option(None, "--n-ensemble", help="Members per pair (default: as trained, else 2)."),
    repeats: int = typer.Option(2, "--repeats", help="Extra batch orders (1 + R orders in all); paired differences "
                                "need at least 1, i.e. 2 orders."),
    paired: bool = typer.Option(True, "--paired/--no-paired", help="Every arm trains on every batch order, so each "
                                "arm − baseline difference is judged against its own paired noise (--no-paired: the "
                                "repeats rerun the baseline only, and differences are unjudged)."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="adam, adamw or sgd (default: the run's)."),
    lr: str = typer.Option("auto", "--lr", help="A number, or auto (a third of the run's configured peak lr), "
                           "peak (the configured lr) or final (the lr the run ended at); never 0."),
    eval_steps: Optional[str] = typer.Option(None, "--eval-steps", help="Trajectory: also score after these "
                                             "comma-separated step counts (default: N/4 and N/2)."),
    crps_weight: Optional[float] = typer.Option(None, "--crps-weight", help="CRPS weight (default: as trained)."),
    energy_score_weight: Optional[float] = typer.Option(None, "--energy-score-weight", help="Default: as trained."),
    max_cost: str = typer.Option("0.5", "--max-cost", help="Recommendation: the largest acceptable low-band cost, in "
                                 "percent of the checkpoint's value (energy score and MSE), or 'spread' (the "
                                 "run-to-run spread of one arm)."),
    rollout_steps: Optional[int] = typer.Option(None, "--rollout-steps", help="Roll the checkpoint and every arm out "
                                                "this many steps from held-out states (default 20; 0: no rollout)."),
    data: Optional[str] = typer.Option(None, "--data", help="Evaluation data (th: default the bundled held-out pairs); "
                                       "fme: netCDF split by time into training and evaluation pairs."),
    train_data: Optional[str] = typer.Option(None, "--train-data", help="Training pairs from another source "
                                             "(default th: fresh shallow-water pairs, cached)."),
    n_train: Optional[int] = typer.Option(None, "--n-train", help="Training pairs in the pool (th default 20, fme 16)."),
    n_eval: Optional[int] = typer.Option(None, "--n-eval", help="Evaluation pairs (default: all / 16)."),
    train_time_stop: Optional[str] = typer.Option(None, "--train-time-stop", help="fme: last training time."),
    eval_time_start: Optional[str] = typer.Option(None, "--eval-time-start", help="fme: first evaluation time."),
    bands: Optional[str] = typer.Option(None, "--bands"),
    device: str = typer.Option("auto", "--device", help="auto (GPU when present), cpu, cuda, cuda:i."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("specprobe-out"), "--out", help="Directory for lookahead.json and the figures."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Where fresh training pairs are cached "
                                             "(default: $SPECPROBE_CACHE or ~/.cache/specprobe)."),
    details: bool = typer.Option(False, "--details", help="Also print the full per-metric band table."),
    as_json: bool = typer.Option(False, "--json"),
    quiet: bool = typer.Option(False, "--quiet"),
    fmt: str = typer.Option("png", "--format"),
    no_timestamp: bool = typer.Option(False, "--no-timestamp"),
    ema: bool = typer.Option(False, "--ema"),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint"),
    workers: Optional[int] = typer.Option(None, "--workers", help="CPU processes sharing the arms (default: one per "
                                          "core; 1 on a GPU). Results do not depend on it."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads per process (default: the idle cores "
                                          "shared by the processes)."),
    netcdf: bool = _netcdf_option(),
    wandb_project: Optional[str] = _wandb_option(),
):
    """The lookahead sweep -- the decision: which whitening to train with, at what cost.

    Every arm (baseline, each gamma) fine-tunes the checkpoint N steps on the same batch orders, is scored per degree on held-out pairs and rolled out; each arm − baseline difference is judged against its paired noise, and a stated rule (--max-cost) recommends an arm. `specprobe sweep` is the gradient-only pre-screen.
    """  # noqa: E501 - one line: --help reflows it
    from .probing.lookahead import DEFAULT_GAMMAS, LookaheadSettings, sweep_variants
    from .probing.lookahead import lookahead as run
    from .probing.recommend import Rule
    from .probing.result import json_safe
    from .probing.sweep import parse_floats
    from .report.files import prepare_out_dir
    from .report.results import LookaheadResult

    _check_format(fmt)
    _check_extras(netcdf, wandb_project)
    lr_value, lr_from = _lr_option(lr)
    settings = LookaheadSettings(steps=steps, batch_size=batch_size, n_ensemble=n_ensemble, repeats=repeats, seed=seed,
                                 paired=paired, crps_weight=crps_weight, energy_score_weight=energy_score_weight,
                                 optimizer=optimizer, lr=lr_value, lr_from=lr_from, bands=bands,
                                 eval_steps=tuple(int(k) for k in parse_floats(eval_steps, "--eval-steps"))
                                 if eval_steps else None)
    rule = Rule(max_cost=_max_cost_option(max_cost), k=settings.k)
    gammas = parse_floats(gamma, "--gamma") if gamma else None
    eps = parse_floats(eps_frac, "--eps-frac") if eps_frac else None
    if gammas is None and eps is None and not whitening:
        gammas = list(DEFAULT_GAMMAS)
    variants = sweep_variants(gammas, eps, whitening or ())
    world = _start_world(device)
    out_dir = prepare_out_dir(out) if world is None or world.is_writer else out
    result = json_safe(run(checkpoint, data=data, train_data=train_data, variants=variants, settings=settings,
                        n_train=n_train, n_eval=n_eval, device=device, threads=threads, workers=workers,
                        cache_dir=cache_dir, options=_load_options(trust=trust_checkpoint, ema=ema),
                        train_time_stop=train_time_stop, eval_time_start=eval_time_start,
                        rollout_steps=rollout_steps, rule=rule, command_line=["specprobe", *sys.argv[1:]],
                        timestamp=not no_timestamp))
    if not _writes(world):
        return
    from .report.lookahead_report import lookahead_table, provenance_lines

    _emit(LookaheadResult(result, out_dir / "lookahead.json"), out_dir, fmt=fmt, netcdf=netcdf,
          wandb_project=wandb_project, as_json=as_json, quiet=quiet,
          after=[*([lookahead_table(result)] if details else []), *provenance_lines(result)])


def _lr_option(text: str):
    """--lr: (number, None) or (None, policy)."""
    from .probing.lookahead import LR_POLICIES

    word = text.strip().lower()
    if word in LR_POLICIES:
        return None, word
    try:
        value = float(word)
    except ValueError:
        raise ValueError(f"--lr: expected a positive number or one of {', '.join(LR_POLICIES)}, got {text!r}") from None
    if not (value > 0 and value == value and value != float("inf")):
        raise ValueError(f"--lr: expected a positive number (a lookahead at lr {text} changes nothing) or one of "
                         f"{', '.join(LR_POLICIES)}")
    return value, "auto"


def _max_cost_option(text: str):
    """--max-cost: a percentage -> fraction, or 'spread'."""
    word = text.strip().lower().rstrip("%")
    if word == "spread":
        return "spread"
    try:
        value = float(word)
    except ValueError:
        raise ValueError(f"--max-cost: expected a percentage >= 0 or 'spread', got {text!r}") from None
    if not (value >= 0 and value != float("inf")):
        raise ValueError(f"--max-cost: expected a percentage >= 0 or 'spread', got {text!r}")
    return value / 100


def main():
    """Console entry point: usage errors (unknown option, bad value) are one line too.

    Under torchrun only rank 0 speaks: the other ranks' stdout goes to /dev/null, and a usage
    error (the same on every rank) is printed once.
    """
    from .probing import distributed as dist

    quiet_rank = dist.launched() and dist.env_rank() != 0
    if quiet_rank:
        import logging
        import warnings

        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
        logging.disable(logging.WARNING)  # libraries' warnings once (rank 0), not once per rank
        warnings.simplefilter("ignore")
    try:
        code = app(args=_wandb_bare(sys.argv[1:]), standalone_mode=False)
    except Exception as e:  # noqa: BLE001 - typer vendors click; match its classes by name
        kinds = {c.__name__ for c in type(e).__mro__}
        if "UsageError" in kinds:
            ctx = getattr(e, "ctx", None)
            cmd = ctx.command_path if ctx is not None else "specprobe"
            message = " ".join(e.format_message().split())
            if message and not quiet_rank:  # empty when no_args_is_help already printed the help
                typer.echo(f"error: {message} (see `{cmd} --help`)", err=True)
            code = 2
        elif "Abort" in kinds:
            if not quiet_rank:
                typer.echo("error: aborted", err=True)
            code = 130
        else:
            raise
    finally:
        multi_rank = dist.shutdown()
    code = code if isinstance(code, int) else 0
    if multi_rank:
        dist.exit_rank(code)
    sys.exit(code)
