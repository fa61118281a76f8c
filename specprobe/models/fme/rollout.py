"""fme's multi-step training rollout (``TrainStepper.train_on_batch`` -> ``_accumulate_loss``, fme 2026.10.0).

fme trains on ``n_forward_steps`` autoregressive steps: ``Stepper.predict_generator`` feeds each
step's output back as the next step's prognostic input, with the forcings of the window, and one
noise generator runs through the whole rollout. Step ``k`` is *optimized* (its loss is accumulated,
and it runs with gradients) when ``optimize_last_step_only`` and k is the last step, else when
``pushforward_steps <= k < n_forward_steps``; the other steps run under ``torch.no_grad()``, so no
gradient reaches the weights through them. The optimized loss is the plain sum over optimized steps
of ``StepLoss(gen_k, target_k, step=k)``, which weights step k by ``(1 + alpha k) ** -0.5`` with
``alpha = loss.sqrt_loss_step_decay_constant``.

Not reproduced (as for one step): the corrector-delta penalty (``stepper_training.corrector_loss``)
and fme's regularizer loss.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from ...errors import DataError, SpecprobeError


@dataclass(frozen=True)
class RolloutSettings:
    n_forward_steps: int = 1
    optimize_last_step_only: bool = False
    pushforward_steps: int = 0
    sqrt_loss_step_decay_constant: float = 0.0
    source: str = "default"

    def __post_init__(self):
        k, p = self.n_forward_steps, self.pushforward_steps
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SpecprobeError(f"--n-forward-steps: expected an integer >= 1, got {k!r}")
        if isinstance(p, bool) or not isinstance(p, int) or p < 0:
            raise SpecprobeError(f"--pushforward-steps: expected an integer >= 0, got {p!r}")
        if p and self.optimize_last_step_only:
            raise SpecprobeError("pushforward_steps cannot be combined with optimize_last_step_only (as in fme)")
        if p >= k:
            raise SpecprobeError(f"pushforward_steps ({p}) must be less than n_forward_steps ({k}) (as in fme); "
                                 "pass a larger --n-forward-steps or --pushforward-steps 0")

    def optimized(self, step: int) -> bool:
        if self.optimize_last_step_only:
            return step == self.n_forward_steps - 1
        return self.pushforward_steps <= step < self.n_forward_steps

    def step_weight(self, step: int) -> float:
        return (1.0 + self.sqrt_loss_step_decay_constant * step) ** (-0.5)  # fme StepLoss.forward

    @property
    def loss_steps(self) -> list[int]:
        return [k for k in range(self.n_forward_steps) if self.optimized(k)]

    def describe(self) -> dict:
        return {"n_forward_steps": self.n_forward_steps, "optimize_last_step_only": self.optimize_last_step_only,
                "pushforward_steps": self.pushforward_steps,
                "sqrt_loss_step_decay_constant": self.sqrt_loss_step_decay_constant,
                "loss_steps": self.loss_steps, "step_weights": [self.step_weight(k) for k in self.loss_steps],
                "loss": "sum over loss steps of step_weight * (one-step loss)", "source": self.source}


def resolve_rollout(obj, path, *, n_forward_steps=None, optimize_last_step_only=None,
                    pushforward_steps=None) -> RolloutSettings:
    """Given values win; the rest come from the run's training config (:func:`training_rollout_config`)."""
    from .training_config import training_rollout_config

    recorded = training_rollout_config(obj, path)
    given = [name for name, v in (("n_forward_steps", n_forward_steps), ("optimize_last_step_only", optimize_last_step_only),
                                  ("pushforward_steps", pushforward_steps)) if v is not None]
    source = recorded["source"] + (f"; given: {', '.join(given)}" if given else "")
    return RolloutSettings(
        n_forward_steps=recorded["n_forward_steps"] if n_forward_steps is None else n_forward_steps,
        optimize_last_step_only=(recorded["optimize_last_step_only"] if optimize_last_step_only is None
                                 else bool(optimize_last_step_only)),
        pushforward_steps=recorded["pushforward_steps"] if pushforward_steps is None else pushforward_steps,
        sqrt_loss_step_decay_constant=recorded["sqrt_loss_step_decay_constant"], source=source)


def generate_rollout(target, batch, *, n_ensemble: int, seed: int) -> list[tuple[int, dict, dict, float]]:
    """fme's training rollout: [(step, gen {name: (B, E, H, W)}, target {name: (B, 1, H, W)}, step weight)]
    for the optimized steps, physical units, differentiable."""
    import torch
    from fme.core.optimization import NullOptimization
    from fme.core.random_state import RandomState
    from fme.core.stepper_state import StepperState
    from fme.core.tensors import add_ensemble_dim, unfold_ensemble_dim

    if not isinstance(n_ensemble, int) or n_ensemble < 1:
        raise ValueError(f"n_ensemble: expected an integer >= 1, got {n_ensemble!r}")
    st, settings = target.stepper, target.rollout
    n_steps = settings.n_forward_steps
    out = []
    with target._ctx():
        data = target._batch_data(batch)
        n_data_steps = data.time.shape[1] - st.n_ic_timesteps
        if n_data_steps < n_steps:
            raise DataError(f"a {n_steps}-step rollout needs {n_steps + st.n_ic_timesteps} times per sample, "
                            f"the batch has {data.time.shape[1]}")
        # Same order as TrainStepper.train_on_batch / _accumulate_loss (fme 2026.10.0).
        target_data = st.get_forward_data(data, compute_derived_variables=False)
        data = st.forcing_deriver(data)
        ic = data.get_start(st.prognostic_names, st.n_ic_timesteps).as_batch_data().broadcast_ensemble(n_ensemble)
        forcing = data.broadcast_ensemble(n_ensemble)
        state = StepperState(random_state=RandomState.from_seed(int(seed)))
        steps = iter(st.predict_generator(ic.data, forcing.data, n_steps, NullOptimization(), labels=ic.labels,
                                          data_mask=forcing.data_mask, stepper_state=state))
        for step in range(n_steps):
            optimize = settings.optimized(step)
            with contextlib.nullcontext() if optimize else torch.no_grad():
                result = next(steps)
            if optimize:
                gen = unfold_ensemble_dim(result.output, n_ensemble=n_ensemble)
                tgt = add_ensemble_dim({k: v.select(st.TIME_DIM, step) for k, v in target_data.data.items()})
                out.append((step, gen, tgt, settings.step_weight(step)))
    return out
