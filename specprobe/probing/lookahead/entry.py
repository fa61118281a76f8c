"""The file-level entry point: :func:`lookahead` loads a checkpoint, builds the pools, runs and judges the sweep."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

from ...errors import DataError, SpecprobeError
from ...spectral.whitening import parse_variants
from ..recommend import Rule
from .config import DEFAULT_GAMMAS, LookaheadSettings, sweep_variants
from .recipe import resolve_lr
from .training import arm_runs, check_disjoint, run_lookahead
from .workers import WorkerPool, _pools_digest, default_workers

if TYPE_CHECKING:
    from ...models.options import LoadOptions


# ------------------------------------------------------------------ file-level entry point


def lookahead(checkpoint=None, *, data: str | os.PathLike[str] | None = None,
              train_data: str | os.PathLike[str] | None = None, variants: Sequence | None = None,
              settings: LookaheadSettings = LookaheadSettings(), n_train: int | None = None, n_eval: int | None = None,
              device: str = "auto", threads: int | None = None, workers: int | None = None,
              cache_dir: str | os.PathLike[str] | None = None, options: LoadOptions | None = None, train_time_stop: str | None = None, eval_time_start: str | None = None,
              rollout_steps: int | None = None, rule: Rule | None = None, command_line: list[str] | None = None,
              timestamp: bool = True, progress: Callable[[int, int], None] | None = None) -> dict:
    """The lookahead sweep on a checkpoint: fine-tune every arm, score and roll it out, judge and recommend.

    Args:
        checkpoint: a file, ``bundled[:NAME]``, or None (the bundled model).
        data: evaluation data (torch-harmonics: default the bundled held-out pairs; fme: netCDF split by
            time into training and evaluation pairs).
        train_data: training pairs from another source (torch-harmonics default: fresh shallow-water
            pairs, cached).
        variants: the whitened arms (strings, fme dicts or configs); None: the default sweep, gamma 0, 0.2,
            0.5, 0.8, 1 at eps_frac 0.02 (:func:`sweep_variants`).
        settings: steps, batches, orders, optimizer and lr (:class:`LookaheadSettings`).
        n_train, n_eval: training / evaluation pairs in the pools (None: the family's defaults).
        device: ``auto``, ``cpu``, ``cuda[:i]``.
        threads: CPU threads per process (None: the idle cores shared by the processes; 1 when ``timestamp``
            is False, the reproducible mode).
        workers: processes that share the arms (None: one per CPU core, 1 on a GPU or under torchrun).
            Results do not depend on it.
        cache_dir: where fresh training pairs are cached (None: ``$SPECPROBE_CACHE`` or ~/.cache/specprobe).
        options: how to load the checkpoint (:class:`~specprobe.models.options.LoadOptions`: ``trust``,
            ``ema``); None: the defaults.
        train_time_stop, eval_time_start: fme netCDF data: the last training and first evaluation time.
        rollout_steps: roll out the checkpoint and every arm this many steps from held-out states (None:
            the default, 20; 0: no rollout).
        rule: the recommendation rule (:class:`~specprobe.probing.recommend.Rule`); None: the default
            (low-band cost at most 0.5%).
        command_line: recorded in the provenance (default: ``sys.argv``).
        timestamp: False: no time or timings in the result (byte-identical reruns).
        progress: called as ``progress(runs_done, n_runs)``.

    Returns:
        The ``lookahead.json`` dict: per arm and band the checkpoint's value, the paired noise, each arm vs
        the checkpoint and vs the baseline (``table``), the trajectory, rollout health, the recommendation
        with its reasons, and the provenance. ``specprobe.load_result`` reads it.

    Raises:
        ValueError, SpecprobeError: bad settings, an adapter that cannot fine-tune, overlapping training and
            evaluation pairs, or data the model cannot take.
    """
    import os

    import torch

    from ..context import RunContext

    if variants is None:
        variants = sweep_variants(DEFAULT_GAMMAS)
    configs = parse_variants(variants)  # parse errors before any loading
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    if rollout_steps is not None and (isinstance(rollout_steps, bool) or not isinstance(rollout_steps, int)
                                      or rollout_steps < 0):
        raise ValueError(f"rollout steps: expected an integer >= 0, got {rollout_steps!r}")
    ctx = RunContext.start(checkpoint, device=device, threads=threads, timestamp=timestamp)
    world, dev = ctx.world, ctx.device  # under torchrun: arms spread over the ranks
    n_runs = len(arm_runs(configs, settings))
    n_workers = workers if workers is not None else default_workers(dev.type, n_runs, world is not None)
    if n_workers > 1 and (dev.type != "cpu" or world is not None):
        raise SpecprobeError("--workers > 1 spreads arms over CPU processes; on a GPU or under torchrun use 1 "
                             "(torchrun already spreads the arms over its ranks)")
    n_workers = min(n_workers, n_runs)
    n_threads = ctx.share_cores(threads, world.local_size if world is not None else n_workers)
    path = ctx.path
    torch.manual_seed(settings.seed)
    if options is None:
        from ...models.options import LoadOptions

        options = LoadOptions()
    target = ctx.load(options)
    if not hasattr(target, "lookahead_pools"):
        raise SpecprobeError(f"{path}: the {target.family} adapter cannot fine-tune (no training data source)")
    resolve_lr(target, target.training_recipe().get("optimizer"), settings)  # a refused lr fails before any data
    pool_kwargs = {"n_train": n_train, "n_eval": n_eval, "seed": settings.seed, "cache_dir": cache_dir}
    if pool_kwargs["n_train"] is None:
        pool_kwargs.pop("n_train")
    if train_time_stop is not None or eval_time_start is not None:
        if target.family != "fme":
            raise SpecprobeError("--train-time-stop/--eval-time-start split fme netCDF data by time; "
                                 "torch-harmonics checkpoints take --train-data")
        pool_kwargs.update(train_time_stop=train_time_stop, eval_time_start=eval_time_start)
    t0 = time.perf_counter()
    train_pool, eval_pool = target.lookahead_pools(data, train_data, **pool_kwargs)
    check_disjoint(train_pool, eval_pool)  # before building anything else
    rollout, rollout_spec, rollout_note = _rollout_for(target, data, train_pool, rollout_steps, settings, cache_dir)
    data_s = time.perf_counter() - t0
    pool = None
    if n_workers > 1:
        spec = {"checkpoint": str(path), "device": "cpu", "options": options, "data": data,
                "train_data": train_data, "pool_kwargs": pool_kwargs, "rollout": rollout_spec}
        pool = WorkerPool(n_workers, n_threads or 1, spec, _pools_digest(train_pool, eval_pool))
    try:
        result = run_lookahead(target, train_pool, eval_pool, variants=configs, settings=settings, progress=progress,
                               shard=world.shard() if world is not None else None, workers=pool, rollout=rollout,
                               rule=rule)
    finally:
        if pool is not None:
            pool.close()
    if rollout_note:
        result["rollout_note"] = rollout_note
    result["provenance"] = ctx.provenance(target, ema=options.ema, command_line=command_line,
                                          split="arms: arm i on rank i % world_size")
    result["provenance"].update({
        "training_recipe_used": {"loss": result["loss"], "optimizer": result["optimizer"]},
        "processes": n_workers,
        "seed": settings.seed,
    })
    if timestamp:
        result["provenance"]["data_seconds"] = round(data_s, 3)
        result["provenance"]["load_average"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
        result["provenance"]["main_process_cpu_s"] = round(time.process_time(), 3)
    else:
        result.pop("elapsed_s", None)
        result.pop("workers", None)
        result["provenance"].pop("processes", None)
        for a in result["arms"]:
            a.pop("seconds", None)
        for r in [result.get("rollout", {}).get("checkpoint")] + [a.get("rollout") for a in result["arms"]]:
            if r:
                r.pop("seconds", None)
    return result


def _rollout_for(target, data, train_pool, rollout_steps, settings, cache_dir):
    """(rollout {settings, set} or None, what a worker needs to rebuild it, a note when it is skipped)."""
    if rollout_steps == 0:
        return None, None, "rollout health off (--rollout-steps 0)"
    try:
        from ..rollout_health import RolloutSettings, build_rollout_set
    except ImportError:  # a build without the rollout module
        return None, None, "rollout health not available in this build"
    if not hasattr(target, "rollout_set"):
        return None, None, f"rollout health: the {target.family} adapter cannot roll out"
    rs = RolloutSettings() if rollout_steps is None else RolloutSettings(steps=rollout_steps)
    rs = replace(rs, seed=settings.seed)
    # torch-harmonics --data holds evaluation pairs, too short for a rollout: the solver gives the reference
    rdata = data if target.family == "fme" else None
    try:
        rset = build_rollout_set(target, rdata, settings=rs, cache_dir=cache_dir, avoid=(train_pool,))
    except DataError as e:
        if rollout_steps is not None:  # asked for: the user hears why it cannot be done
            raise
        return None, None, f"rollout health skipped: {e} (give --rollout-steps N to require it)"
    return {"settings": rs, "set": rset}, {"settings": asdict(rs), "data": rdata}, None
