"""What every checkpoint adapter hands the probe engine: a :class:`ProbeTarget`.

An adapter knows one checkpoint family: how to load its files safely, how its model makes an
ensemble exactly as it was trained, how its data is normalised for the loss, and where the degree
axis l sits in each spectral parameter. The engine knows none of that; it only sees this interface.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class SpectralParam:
    """One trainable parameter and, if it is per-degree, where its degree axis is."""

    name: str
    tensor: Any  # the live torch.nn.Parameter inside the model
    degree_axis: int | None  # None: not per-degree (report its plain gradient norm only)
    layout: str = ""  # e.g. "(out, in, L) complex64, torch-harmonics driscoll-healy"
    l0_bypassed: bool = False  # l = 0 weight unused by design (filter_preserves_global_mean)

    @property
    def per_degree(self) -> bool:
        return self.degree_axis is not None

    @property
    def n_degrees(self) -> int | None:
        return None if self.degree_axis is None else int(self.tensor.shape[self.degree_axis])

    def describe(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.tensor.shape),
            "dtype": str(self.tensor.dtype).removeprefix("torch."),
            "degree_axis": self.degree_axis,
            "layout": self.layout,
            "l0_bypassed": self.l0_bypassed,
        }


@dataclass
class OptimizerSettings:
    """The optimizer the checkpoint was trained with, as far as it is recorded."""

    name: str = "unknown"  # "Adam", "AdamW", "SGD", ...
    eps: float = 1e-8  # torch.optim.Adam / AdamW default
    betas: tuple | None = None
    lr: float | None = None
    source: str = "not recorded (Adam eps 1e-8 assumed for the Adam statistics)"
    extra: dict = field(default_factory=dict)

    @property
    def adaptive(self) -> bool:
        return self.name.lower().startswith("adam")

    def to_dict(self) -> dict:
        return {"name": self.name, "eps": self.eps, "betas": list(self.betas) if self.betas else None,
                "lr": self.lr, "source": self.source, **self.extra}


@dataclass
class Batch:
    """One batch of probe data. ``payload`` is adapter-specific (tensors or dicts of tensors)."""

    payload: Any
    size: int
    meta: dict = field(default_factory=dict)


class ProbeTarget(Protocol):
    family: str  # e.g. "torch-harmonics-sfno", "fme"
    channel_names: list[str]  # in the loss's channel order
    nlat: int
    nlon: int
    data_grid: str  # grid type of the data ("equiangular", "legendre-gauss")
    loss_grid: str  # grid of the loss SHT ("legendre-gauss" for fme)
    device: Any

    def parameters(self) -> list[SpectralParam]:
        """Every trainable parameter, per-degree ones with their degree axis."""

    def describe(self) -> dict:
        """Provenance: format, grid, channels, parameter layouts, training metadata."""

    def batches(self, data: Any, *, n_samples: int, batch_size: int, seed: int) -> Iterator[Batch]:
        """Input/target batches normalised as the model was trained."""

    def forward(self, batch: Batch, *, n_ensemble: int, seed: int):
        """The training forward: (gen (B, E, C, H, W), target (B, 1, C, H, W)) in loss space.

        Members are repeat-interleaved along the batch and every row draws its own noise, as fme
        trains; ``seed`` makes the noise reproducible.
        """


class OptionalCapabilities(Protocol):
    """What an adapter may also offer; callers test with ``getattr(target, NAME, None)`` and say what is
    missing in one line. Both bundled families implement every one of these, except where noted.

    Optimizer view (``probing/optstats.py``):
        optimizer_settings() -> OptimizerSettings: the optimizer the checkpoint was trained with.
        optimizer_state() -> {param name: {"exp_avg_sq" (float64, real view), "step", "beta2", "eps"}} | None
            (fme ``ckpt.tar`` only: its Adam state).
        adam_by_l() -> dict: per-degree sqrt(v_hat) and effective step of the stored state (fme only).
    Training rollouts (fme only): loss_steps(batch, *, n_ensemble, seed) -> [(gen, target, step weight)].
    Predictability: persistence(batch) -> (B, 1, C, H, W) tensor in loss space, NaN where a channel has no
        input state (fme diagnostics).
    Lookahead: trainable_module() -> torch.nn.Module; training_recipe() -> {"loss": ..., "optimizer": ...};
        lookahead_pools(data, train_data, *, n_train, n_eval, seed, cache_dir, ...) -> (PairPool, PairPool).
    Rollout health: rollout_set(data, *, n_initial, steps, seed, cache_dir) -> RolloutSet;
        rollout_leads(rollout_set, *, n_ensemble, seed) -> iterator of (gen, ref) per lead, loss space.
    """

    def optimizer_settings(self) -> OptimizerSettings: ...

    def optimizer_state(self) -> dict | None: ...

    def persistence(self, batch: Batch): ...

    def trainable_module(self): ...

    def training_recipe(self) -> dict: ...

    def lookahead_pools(self, data=None, train_data=None, **kwargs): ...

    def rollout_set(self, data=None, *, n_initial: int, steps: int, seed: int, cache_dir=None) -> "RolloutSet": ...

    def rollout_leads(self, rollout_set: "RolloutSet", *, n_ensemble: int, seed: int): ...


@dataclass
class PairPool:
    """A fixed set of input/target pairs: what a lookahead trains on, or scores on.

    ``take(indices)`` returns those pairs as one :class:`Batch` for the adapter's ``forward``.
    ``state_keys[i]`` fingerprints pair i's input and target states (bytes of the fields), so a
    caller can prove that no state of a training pair is also in an evaluation pair.
    """

    size: int
    take: Any  # Callable[[list[int]], Batch]
    state_keys: list  # per pair: (input fingerprint, target fingerprint)
    description: dict = field(default_factory=dict)


@dataclass
class RolloutSet:
    """Held-out trajectories a model is rolled out from: what ``rollout_health`` scores against.

    ``initial``: adapter-specific (torch-harmonics: (B, C, H, W) loss-space states; fme: a :class:`Batch`
    whose window holds the initial time and the ``steps`` later times, forcing included).
    ``reference``: (B, R, C, H, W) loss-space states at leads 1..R (what the model should produce).
    ``state_keys[b]``: fingerprints of trajectory b's states at leads 0..R, in the representation the
    adapter's :class:`PairPool` fingerprints, so ``shared_states(pool)`` can prove disjointness.
    """

    initial: Any
    reference: Any
    description: dict = field(default_factory=dict)
    state_keys: list = field(default_factory=list)

    @property
    def n_initial(self) -> int:
        return int(self.reference.shape[0])

    @property
    def steps(self) -> int:
        return int(self.reference.shape[1])

    def shared_states(self, pool) -> int:
        """How many of this set's states are also states of ``pool``'s pairs (0 when disjoint)."""
        pool_states = {k for pair in pool.state_keys for k in pair}
        return len({k for traj in self.state_keys for k in traj} & pool_states)


def state_fingerprints(fields) -> list[str]:
    """One sha1 per leading index of a tensor (N, ...) or a dict of them (same N): its exact bytes."""
    import hashlib

    tensors = [fields[k] for k in sorted(fields)] if isinstance(fields, dict) else [fields]
    n = int(tensors[0].shape[0])
    out = []
    for i in range(n):
        h = hashlib.sha1()
        for t in tensors:
            h.update(t[i].detach().cpu().contiguous().numpy().tobytes())
        out.append(h.hexdigest())
    return out
