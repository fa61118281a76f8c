"""``specprobe.probe(...)``: load a checkpoint, run the engine, attach provenance."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import fields

from ..models.options import LoadOptions
from .context import RunContext, library_versions, sha256_of  # noqa: F401 - library_versions, sha256_of: public here too
from .engine import run_probe
from .result import ProbeResult
from .settings import LossSettings, ProbeSettings

_SETTINGS_FIELDS = {f.name for f in fields(ProbeSettings)}
_LOSS_FIELDS = {f.name for f in fields(LossSettings)}


def probe(checkpoint=None, *, settings: ProbeSettings | None = None, options: LoadOptions | None = None,
          data: str | os.PathLike[str] | None = None, device: str = "auto", threads: int | None = None,
          progress: Callable[[int, int], None] | None = None, command_line: list[str] | None = None,
          timestamp: bool = True, distributed: bool = True, **kwargs) -> ProbeResult:
    """Per-degree gradient probe of the energy score, baseline vs whitened, on one checkpoint.

    Args:
        checkpoint: a file, ``bundled[:NAME]``, or None (the bundled shallow-water SFNO).
        settings: what to measure (:class:`~specprobe.probing.settings.ProbeSettings`); None builds it
            from ``kwargs``: ``variants`` (whitening settings besides the always-present baseline, e.g.
            ``"per_sample:gamma=0.8,eps_frac=0.05"``), ``n_samples`` (8), ``n_ensemble`` (2), ``batch_size``,
            ``seed``, ``bands``, ``crps_weight``, ``energy_score_weight``, ``other_params``,
            ``moment_elements`` (per-element second moments at a seeded sample of this many columns per
            degree; None: everywhere, exact), ``r2_threshold`` and ``min_change`` (when a degree counts
            as noise-dominated: ``result.predictability``).
        options: how to load the checkpoint (:class:`~specprobe.models.options.LoadOptions`); None builds
            it from ``kwargs``: ``trust_checkpoint``, ``ema``, ``degree_axis``; torch-harmonics state dicts:
            ``grid="64x128:equiangular"``, ``scale_factor=2``; fme: ``n_forward_steps=K`` (the loss of
            fme's K-step training rollout, with ``optimize_last_step_only``, ``pushforward_steps``; default:
            the run's training config), ``labels``, ``loss_weights``, ``time_start``, ``time_stop``.
        data: the family's data source (None: the bundled held-out sample for the bundled model, else
            seeded synthetic fields on the model's grid).
        device: ``auto`` (the GPU when present; ``$SPECPROBE_DEVICE`` overrides), ``cpu``, ``cuda[:i]``.
        threads: CPU threads (default: the idle cores).
        progress: called as ``progress(samples_done, n_samples)``.
        command_line: recorded in the provenance (default: ``sys.argv``).
        timestamp: False is the reproducible mode: no time or timings, one CPU thread unless ``threads``.
        distributed: under torchrun (True, the default) the samples are split over the ranks and every
            rank returns the same result, that of all samples; False probes all samples in this process
            (a series gives each rank whole checkpoints).
        **kwargs: fields of ``settings`` or ``options``, where those are None.

    Returns:
        The :class:`~specprobe.probing.result.ProbeResult`, with its provenance (checkpoint sha256,
        library versions, options); ``specprobe.load_result(result)`` reads it as tables and figures.

    Raises:
        ValueError, SpecprobeError: a bad setting or option (before any checkpoint is read where it can be),
            an unreadable checkpoint, or data the model cannot take.
    """
    import torch

    settings, options = _settings_and_options(settings, options, kwargs)
    ctx = RunContext.start(checkpoint, device=device, threads=threads, timestamp=timestamp)
    shard = ctx.shard() if distributed else None
    torch.manual_seed(settings.seed)
    target = ctx.load(options)
    result = run_probe(target, settings, data=data, progress=progress, shard=shard)
    adam = getattr(target, "adam_by_l", None)
    if adam is not None:
        result.adam_by_l = adam() or {}
    synthetic = bool(target.describe().get("synthetic_data", False)) if data is None else False
    split = None
    if ctx.world is not None:
        split = "samples: batch index % world_size" if shard is not None else f"checkpoints (this one on rank {ctx.world.rank})"
    result.provenance.update(ctx.provenance(target, ema=options.ema, command_line=command_line, split=split))
    result.provenance.update({
        "data": {"source": "synthetic" if synthetic else "bundled/default" if data is None else str(data),
                 "synthetic": synthetic},
        "options": {**settings.provenance(), "device_requested": device, "cpu_threads": ctx.threads,
                    **options.given()},
        "seed": settings.seed,
        "rollout": target.rollout.describe() if hasattr(target, "rollout") else {"n_forward_steps": 1},
    })
    if not timestamp:
        result.provenance.pop("elapsed_s", None)
    return result


def _settings_and_options(settings, options, kwargs: dict) -> tuple[ProbeSettings, LoadOptions]:
    """Split flat keyword arguments into the two objects (each validated once, before any loading)."""
    own = {k: kwargs.pop(k) for k in list(kwargs) if k in _SETTINGS_FIELDS or k in _LOSS_FIELDS}
    if settings is None:
        loss = {k: own.pop(k) for k in list(own) if k in _LOSS_FIELDS}
        if loss:
            if "loss" in own:
                raise TypeError(f"probe: give loss or {', '.join(sorted(loss))}, not both")
            own["loss"] = LossSettings(**loss)
        settings = ProbeSettings(**own)
    elif own:
        raise TypeError(f"probe: give settings or its fields ({', '.join(sorted(own))}), not both")
    if options is None:
        options = LoadOptions.from_kwargs(**kwargs)
    elif kwargs:
        raise TypeError(f"probe: give options or its fields ({', '.join(sorted(kwargs))}), not both")
    return settings, options
