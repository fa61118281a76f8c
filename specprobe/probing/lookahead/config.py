"""The lookahead's settings and the arms of a sweep (constants, :class:`LookaheadSettings`, :func:`sweep_variants`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...spectral import WhiteningConfig
from ...spectral.whitening import parse_variants

SCHEMA = "specprobe.lookahead/1"
METRICS = ("energy_score", "es_skill", "es_spread", "mse", "power_ratio")
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_POLICIES = ("auto", "peak", "final")
AUTO_LR_FRACTION = 1 / 3  # --lr auto: this fraction of the run's configured (peak) lr; docs/lookahead.md
EVAL_SEED = 7_000_001  # evaluation noise: the same in every arm and before training
DEFAULT_GAMMAS = (0.0, 0.2, 0.5, 0.8, 1.0)  # the default sweep (gamma 0 = the baseline arm)


@dataclass(frozen=True)
class LookaheadSettings:
    """How each arm of the lookahead sweep fine-tunes and is judged; validated on construction.

    Args:
        steps: optimizer steps per arm (>= 0; 0 scores the checkpoint itself).
        batch_size: training pairs per step.
        n_ensemble: members per pair; None: what the run trained with, else 2.
        eval_batch_size: evaluation pairs per forward.
        repeats: extra batch orders (1 + repeats in all); paired differences need >= 1.
        paired: every arm trains on every order (each arm - baseline difference judged against its own
            paired noise); False: the repeats rerun the baseline only, and differences are unjudged.
        seed: seeds the batch orders, the model's noise and the data pools.
        crps_weight, energy_score_weight: the trained loss; None: what the run trained with.
        optimizer: ``adam``, ``adamw`` or ``sgd``; None: the run's.
        lr: a positive learning rate; wins over ``lr_from``.
        lr_from: ``auto`` (a third of the configured peak lr), ``peak`` or ``final`` (where the run ended).
        bands: degree bands, e.g. ``"low=1:8,high=56:63"``; None: the lowest and highest eighth.
        eval_steps: trajectory step counts scored besides the last (1..steps); None: N/4 and N/2.
        k: the noise rule: None (default) calls a difference beyond noise when |mean| > t(0.975, n-1) se with
            one sign in every order; a number uses k se instead.

    Raises:
        ValueError: a field out of range.
    """

    # Defaults measured on the bundled model (docs/lookahead.md, "Choosing the defaults"): at a third
    # of the run's peak lr, 40 steps of 4 pairs over 3 batch orders resolve the low-band cost of
    # gamma >= 0.5 (energy score and MSE) beyond its paired noise, and the high-band gains.
    steps: int = 40
    batch_size: int = 4
    n_ensemble: int | None = None  # None: what the run trained with, else 2
    eval_batch_size: int = 8
    repeats: int = 2  # extra batch orders: 1 + repeats orders in all
    paired: bool = True  # repeats rerun every arm (paired differences); False: the baseline only
    seed: int = 0
    crps_weight: float | None = None  # None: what the run trained with
    energy_score_weight: float | None = None
    optimizer: str | None = None  # adam | adamw | sgd; None: the run's
    lr: float | None = None  # a number wins over lr_from
    lr_from: str = "auto"  # auto: AUTO_LR_FRACTION x the configured lr | peak: configured | final: where it ended
    bands: str | None = None
    eval_steps: tuple | None = None  # trajectory: also score after these steps; None: N/4 and N/2
    k: float | None = None  # paired noise: beyond when |mean| > t(0.975, n-1) se (or k se) with one sign

    def __post_init__(self):
        for name, lo in (("steps", 0), ("batch_size", 1), ("eval_batch_size", 1), ("repeats", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
        if self.n_ensemble is not None and (not isinstance(self.n_ensemble, int) or self.n_ensemble < 1):
            raise ValueError(f"n_ensemble: expected an integer >= 1, got {self.n_ensemble!r}")
        if self.optimizer is not None and self.optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: expected a positive number, got {self.lr!r}")
        if self.lr_from not in LR_POLICIES:
            raise ValueError(f"lr: expected a positive number or one of {', '.join(LR_POLICIES)}, got {self.lr_from!r}")
        for name in ("crps_weight", "energy_score_weight"):
            v = getattr(self, name)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name}: expected a number >= 0, got {v!r}")
        if self.eval_steps is not None:
            steps = tuple(self.eval_steps)
            if any(isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= self.steps for k in steps):
                raise ValueError(f"eval_steps: expected step counts in 1..{self.steps}, got {list(steps)!r}")
            object.__setattr__(self, "eval_steps", tuple(sorted(set(steps))))
        if self.k is not None and not (self.k > 0 and math.isfinite(self.k)):
            raise ValueError(f"k: expected a number > 0 or None, got {self.k!r}")

    @property
    def orders(self) -> int:
        """Batch orders per arm: 1 + :attr:`repeats`."""
        return self.repeats + 1

    def trajectory_steps(self) -> tuple:
        """Step counts scored before the last: ``eval_steps``, else N/4 and N/2 (rounded, distinct, < N)."""
        if self.eval_steps is not None:
            return tuple(k for k in self.eval_steps if k != self.steps)
        return tuple(sorted({k for k in (round(self.steps / 4), round(self.steps / 2)) if 0 < k < self.steps}))


def sweep_variants(gammas: Sequence[float] | None = None, eps_fracs: Sequence[float] | None = None,
                   whitening: Sequence = ()) -> list[WhiteningConfig]:
    """The whitened arms of ``--gamma G1,G2 --eps-frac E1,E2 --whitening ...``.

    Args:
        gammas: whitening exponents in [0, 1]; 0 is the baseline arm, which is always there.
        eps_fracs: amplitude floors > 0; every gamma > 0 is paired with every eps_frac. One list alone
            takes fme's default for the other.
        whitening: further settings (strings, fme dicts or configs), each added once.

    Returns:
        The arms besides the baseline, each setting once, in the order given.
    """
    from ...spectral.whitening import DEFAULT_EPS_FRAC, DEFAULT_GAMMA

    grid = []
    if gammas is not None or eps_fracs is not None:
        gs = list(gammas) if gammas is not None else [DEFAULT_GAMMA]
        es = list(eps_fracs) if eps_fracs is not None else [DEFAULT_EPS_FRAC]
        for g in gs:
            if not (isinstance(g, (int, float)) and 0.0 <= g <= 1.0):
                raise ValueError(f"--gamma: expected numbers in [0, 1] (0 = the baseline arm), got {g!r}")
        for g in gs:
            if g == 0:
                continue
            for e in es:
                grid.append(WhiteningConfig("per_sample", exponent=float(g), eps_frac=float(e)))
    return parse_variants(list(grid) + list(whitening))[1:] if (grid or whitening) else []
