"""``specprobe lookahead``: a short A/B fine-tune from a checkpoint, one arm per loss variant.

Every arm (the baseline, then each whitening setting) starts from the checkpoint's weights and the
same optimizer state (the checkpoint's own when it stores one, else fresh), takes ``steps`` optimizer
steps of the run's training loss (``crps_weight`` CRPS + ``energy_score_weight`` energy score, the
arm's whitening on the energy score) and is scored on held-out pairs the training batches never
contain. A *batch order* (one repeat r) fixes the training batches, their order and the noise seeds;
with ``paired`` (the default) every arm trains on every order, so the arm - baseline difference on
the same order is a paired difference, judged against its own noise over the orders
(:func:`specprobe.probing.recommend.judge_paired`). The baseline reruns alone give the run-to-run
spread of one arm, reported beside it. Arms are independent (each seeded from its repeat alone), so
they can be spread over worker processes (``workers``) or torchrun ranks with identical results.

Scores (unwhitened, loss space, per channel and per degree l, from ``spectral/``): the energy score
split into skill E|X - y| and spread 0.5 E|X - X'| (fme's per-mode weights and 2 sqrt(LM) scaling,
so the sum over l is the energy-score loss), the ensemble-mean squared error (physical degree power
of mean(X) - y), and the power of the members over the power of the target. With rollout settings,
each arm and the untouched checkpoint are also rolled out autoregressively
(:mod:`specprobe.probing.rollout_health`).

    config.py    constants, LookaheadSettings, sweep_variants (the arms of --gamma/--eps-frac/--whitening)
    recipe.py    the run's loss, optimizer and learning rate (--lr auto|peak|final)
    scoring.py   held-out scores per degree and band
    training.py  batch orders, one arm's fine-tune, ArmRunner, run_lookahead (a loaded target)
    summary.py   the sweep's table: arms vs checkpoint and baseline, paired per order; provenance
    workers.py   CPU worker processes sharing the arms (--workers)
    entry.py     lookahead(): checkpoint file -> pools -> sweep -> judged, recommended result

No submodule shares a name with a function exported here, so importing one never rebinds it.
"""

from .config import (
    AUTO_LR_FRACTION,
    DEFAULT_GAMMAS,
    EVAL_SEED,
    LR_POLICIES,
    METRICS,
    OPTIMIZERS,
    SCHEMA,
    LookaheadSettings,
    sweep_variants,
)
from .entry import lookahead
from .recipe import configured_lr, optimizer_factory, resolve_loss, resolve_lr
from .scoring import band_values, evaluate, per_degree
from .summary import compare_bands, summarise
from .training import ArmRunner, arm_runs, batch_schedule, check_disjoint, order_seed, run_lookahead, train_arm
from .workers import WorkerPool, default_workers

__all__ = [
    "AUTO_LR_FRACTION", "DEFAULT_GAMMAS", "EVAL_SEED", "LR_POLICIES", "METRICS", "OPTIMIZERS", "SCHEMA",
    "ArmRunner", "LookaheadSettings", "WorkerPool", "arm_runs", "band_values", "batch_schedule", "check_disjoint",
    "compare_bands", "configured_lr", "default_workers", "evaluate", "lookahead", "optimizer_factory",
    "order_seed", "per_degree", "resolve_loss", "resolve_lr", "run_lookahead", "summarise", "sweep_variants",
    "train_arm",
]
