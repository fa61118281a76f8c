"""Rollout health for fme checkpoints: fme's own inference stepping over the data's own trajectory.

Initial states: windows of ``steps`` + 1 times of the ``--data`` source, read by fme's dataset code
(:class:`.data.FmeData`), from the held-out half of the default lookahead time split (initial times at
or after its first evaluation state), or from ``time_start``..``time_stop`` when given; with no data,
seeded synthetic series (marked synthetic). The reference is the data's later times; the forcing is
the data's own.

Stepping is what fme's inference does (``fme.ace.inference``, 2026.10.0): ``stepper.set_eval()``,
ensemble by ``broadcast_ensemble`` of the initial condition, noise from a seeded ``RandomState`` on
the initial condition's ``StepperState`` (``PrognosticState.with_random_state``), and
``Stepper.predict``'s steps: ``forcing_deriver``, broadcast forcing, ``get_prediction_generator``.
Outputs go to fme's loss space by :meth:`FmeTarget.to_loss_space`.
"""

from __future__ import annotations

from ...errors import DataError
from ..base import RolloutSet, state_fingerprints

SYNTHETIC_SEED = 3_000_003  # lookahead's synthetic pools use 1_000_003 + seed and 2_000_003


def _check_counts(n_initial, steps, seed):
    for name, v, lo in (("n_initial", n_initial, 1), ("steps", steps, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise DataError(f"rollout {name}: expected an integer >= {lo}, got {v!r}")


def rollout_set(target, data=None, *, n_initial: int, steps: int, seed: int, cache_dir=None, time_start=None,
                time_stop=None) -> RolloutSet:
    """``n_initial`` windows (initial time + ``steps`` later times), reference in loss space.

    ``cache_dir`` is unused (fme reads its data directly)."""
    from .data import _batch, synthetic_series, synthetic_times

    _check_counts(n_initial, steps, seed)
    spec = target.data_spec(steps)
    n_t = spec.n_ic_timesteps + steps
    if data is None:
        if time_start is not None or time_stop is not None:
            raise DataError("time_start/time_stop select times in real data; synthetic data has none")
        fields = synthetic_series(spec, n_initial, SYNTHETIC_SEED + seed, n_t)
        times = synthetic_times(n_initial, 300_000, spec.timestep_seconds, n_t)
        batch = _batch({"data": fields, "time": times}, spec, {"source": "synthetic", "synthetic": True})
        desc = {"source": "synthetic", "synthetic": True, "seed": SYNTHETIC_SEED + seed,
                "recipe": "mean + std * red(l^-2); each later time adds tendency_std * red(l^-2)"}
    else:
        batch, desc = _data_windows(target, data, spec, n_initial, steps, seed, time_start, time_stop)
    fields = batch.payload["data"]
    hours = spec.timestep_seconds / 3600.0 if spec.timestep_seconds else None
    desc.update(trajectories=n_initial, steps=steps, timestep_hours=hours,
                lead_hours=[k * hours for k in range(1, steps + 1)] if hours else None,
                state_every="lead k is k fme steps after the initial time; its reference is the data at that time")
    with target._ctx():
        names = target.fme_step_loss().loss.packer.names
        later = {k: fields[k][:, spec.n_ic_timesteps:].to(target.device) for k in names}
        reference = target.to_loss_space(later, later)[1]  # (B, R, C, H, W); NaN targets zeroed as fme does
    # Per time, every field of the window: the fingerprints the lookahead's pools use.
    keys = [[state_fingerprints({k: v[b:b + 1, t] for k, v in fields.items()})[0] for t in range(n_t)]
            for b in range(n_initial)]
    return RolloutSet(initial=batch, reference=reference, description=desc, state_keys=keys)


def _data_windows(target, data, spec, n_initial, steps, seed, time_start, time_stop):
    from .data import FmeData, _batch, choose_indices
    from .sources import resolve_source

    source = resolve_source(data, target.path)
    n_t = spec.n_ic_timesteps + steps
    explicit = time_start is not None or time_stop is not None
    windows = FmeData(source, spec, n_timesteps=n_t, time_start=time_start if explicit else target.time_start,
                      time_stop=time_stop if explicit else target.time_stop)
    starts = windows.dataset.sample_start_times
    if explicit:
        eligible, rule = list(range(len(windows))), f"initial times in [{time_start}, {time_stop}]"
    else:
        # The default lookahead split trains on pairs 0..k-1 and evaluates on pairs k+1.. (k = n // 2).
        pairs = FmeData(source, target.data_spec(1), n_timesteps=spec.n_ic_timesteps + 1,
                        time_start=target.time_start, time_stop=target.time_stop)
        n = len(pairs)
        first_eval = pairs.dataset.sample_start_times[n // 2 + 1] if n >= 3 else None
        eligible = [i for i in range(len(windows)) if first_eval is not None and starts[i] >= first_eval]
        rule = f"initial times from {first_eval}, the held-out half of the default lookahead time split"
    if len(eligible) < n_initial:
        raise DataError(f"{windows.describe_available()}: {len(eligible)} window(s) of {steps} steps with {rule}; "
                        f"rollout health needs {n_initial} (fewer --rollout-steps, or a longer data source)")
    idx = [eligible[j] for j in choose_indices(len(eligible), n_initial, seed, "rollout initial states")]
    windows.augmentation = 0.0  # inference reads the data as it is: no training augmentation
    read = windows.read(idx, seed=0)
    payload = {"data": dict(read.data), "time": read.time.values}
    if read.labels is not None:
        payload["labels"] = read.labels
    if read.data_mask is not None:
        payload["data_mask"] = read.data_mask
    meta = {"source": source.kind, "synthetic": False, "data_source": source.label, "sample_indices": idx}
    desc = {"source": str(data), "data_source": source.label, "synthetic": False, "selection": rule,
            "sample_indices": idx, "initial_times": [str(starts[i]) for i in idx]}
    return _batch(payload, spec, meta), desc


def rollout(target, rs: RolloutSet, *, n_ensemble: int, seed: int):
    """Iterator over leads k = 1..R of (gen (B, E, C, H, W), ref (B, 1, C, H, W)) in fme's loss space."""
    import torch
    from fme.ace.data_loading.batch_data import PrognosticState
    from fme.core.optimization import NullOptimization
    from fme.core.random_state import RandomState
    from fme.core.tensors import add_ensemble_dim, unfold_ensemble_dim

    if isinstance(n_ensemble, bool) or not isinstance(n_ensemble, int) or n_ensemble < 1:
        raise ValueError(f"n_ensemble: expected an integer >= 1, got {n_ensemble!r}")
    st = target.stepper
    with target._ctx():
        data = target._batch_data(rs.initial)
        target_data = st.get_forward_data(data, compute_derived_variables=False)
        ic = data.get_start(st.prognostic_names, st.n_ic_timesteps).as_batch_data().broadcast_ensemble(n_ensemble)
        ic = PrognosticState(ic).with_random_state(RandomState.from_seed(int(seed)))
        forcing = st.forcing_deriver(data).broadcast_ensemble(n_ensemble)  # Stepper.predict's order
        steps = st.get_prediction_generator(ic, forcing, rs.steps, NullOptimization())

    def leads():
        for k in range(rs.steps):
            # fme's inference runs in eval mode; the adapter's training forward in train mode: put it back.
            was_training = any(m.training for m in st.modules)
            st.set_eval()
            try:
                with target._ctx(), torch.no_grad():
                    out = next(steps)
                    gen = unfold_ensemble_dim(out.output, n_ensemble=n_ensemble)
                    tgt = add_ensemble_dim({n: v.select(st.TIME_DIM, k) for n, v in target_data.data.items()})
                    pair = target.to_loss_space(gen, tgt)
            finally:
                if was_training:
                    st.set_train()
            yield pair

    return leads()
