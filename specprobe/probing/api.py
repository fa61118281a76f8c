"""``specprobe.probe(...)``: load a checkpoint, run the engine, attach provenance."""

from __future__ import annotations

from ..spectral.predictability import DEFAULT_MIN_CHANGE, DEFAULT_R2_THRESHOLD
from .context import RunContext, library_versions, sha256_of  # noqa: F401 - library_versions, sha256_of: public here too
from .engine import DEFAULT_MOMENT_ELEMENTS, LossSettings, run_probe
from .result import ProbeResult


def probe(checkpoint=None, *, data=None, variants=("per_sample",), n_samples: int = 8, n_ensemble: int = 2,
          batch_size: int = 1, seed: int = 0, device: str = "auto", bands: str | None = None,
          crps_weight: float = 0.0, energy_score_weight: float = 1.0, ema: bool = False,
          trust_checkpoint: bool = False, degree_axis: dict | None = None, progress=None,
          command_line: list[str] | None = None, timestamp: bool = True, threads: int | None = None,
          other_params: str = "all", moment_elements: int | None = DEFAULT_MOMENT_ELEMENTS,
          distributed: bool = True, r2_threshold: float = DEFAULT_R2_THRESHOLD,
          min_change: float = DEFAULT_MIN_CHANGE, **target_options) -> ProbeResult:
    """Per-degree gradient probe of the energy score, baseline vs whitened, on one checkpoint.

    checkpoint: a file (None: the bundled shallow-water SFNO); data: the family's data source
    (None: the bundled held-out sample for the bundled model, else seeded synthetic fields on the model's
    grid); variants: whitening settings besides the always-present baseline, e.g.
    ``"per_sample:gamma=0.8,eps_frac=0.05"``.
    target_options: family options. torch-harmonics: ``grid="64x128:equiangular"``, ``scale_factor=2`` for a
    state dict whose weights do not tell them. fme: ``n_forward_steps=K`` probes the loss of fme's K-step
    training rollout (with ``optimize_last_step_only``, ``pushforward_steps``; default: the run's training
    config), ``labels``, ``loss_weights``, ``time_start``, ``time_stop``.

    moment_elements: per-degree parameters with more elements per degree keep per-element second
    moments (GSNR, Adam step) at a seeded sample of this many columns, with standard errors in the
    result; None keeps them everywhere (exact; 16 more bytes per element per variant).

    r2_threshold, min_change: a degree is noise-dominated when the model's R2 of the change there is below
    ``r2_threshold`` and the change is at least ``min_change`` of the state's power (result.predictability).

    Under torchrun (``distributed=True``, the default) the samples are split over the ranks and
    every rank returns the same result, that of all samples; ``distributed=False`` probes all
    samples in this process (a series gives each rank whole checkpoints).
    """
    import torch

    ctx = RunContext.start(checkpoint, device=device, threads=threads, timestamp=timestamp)
    shard = ctx.shard() if distributed else None
    loss = LossSettings(crps_weight=crps_weight, energy_score_weight=energy_score_weight)
    torch.manual_seed(seed)
    target = ctx.load(trust=trust_checkpoint, ema=ema, degree_axis_overrides=degree_axis, **target_options)
    result = run_probe(target, data=data, variants=variants, n_samples=n_samples, n_ensemble=n_ensemble,
                       batch_size=batch_size, seed=seed, bands=bands, loss=loss, progress=progress,
                       other_params=other_params, shard=shard, moment_elements=moment_elements,
                       r2_threshold=r2_threshold, min_change=min_change)
    adam = getattr(target, "adam_by_l", None)
    if adam is not None:
        result.adam_by_l = adam() or {}
    synthetic = bool(target.describe().get("synthetic_data", False)) if data is None else False
    split = None
    if ctx.world is not None:
        split = "samples: batch index % world_size" if shard is not None else f"checkpoints (this one on rank {ctx.world.rank})"
    result.provenance.update(ctx.provenance(target, ema=ema, command_line=command_line, split=split))
    result.provenance.update({
        "data": {"source": "synthetic" if synthetic else "bundled/default" if data is None else str(data),
                 "synthetic": synthetic},
        "options": {"variants": result.variant_names, "n_samples": n_samples, "n_ensemble": n_ensemble,
                    "batch_size": batch_size, "bands": bands or "default", "device_requested": device,
                    "cpu_threads": ctx.threads, "other_params": other_params,
                    "moment_elements": moment_elements if moment_elements is not None else "all",
                    "r2_threshold": r2_threshold, "min_change": min_change,
                    **{k: v for k, v in target_options.items() if v is not None}},
        "seed": seed,
        "rollout": target.rollout.describe() if hasattr(target, "rollout") else {"n_forward_steps": 1},
    })
    if not timestamp:
        result.provenance.pop("elapsed_s", None)
    return result
