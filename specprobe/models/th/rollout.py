"""Autoregressive rollouts of a torch-harmonics SFNO from held-out shallow-water states (rollout health).

Reference: the project's shallow-water solver (:mod:`.swe`) with the recipe the checkpoint records
(balanced initial states, spin-up, a state every ``interval_h``), from a seed stream the recipe never
uses, cached like the lookahead's training pairs; or a ``specprobe.th-sfno-data`` file of trajectories.
Rollout: each member is fed its own previous output, one seeded noise generator runs through the
whole rollout (fme's ``RandomState`` convention), members repeat-interleaved as in ``forward``.

No torch at module level.
"""

from __future__ import annotations

from ...errors import DataError
from ..base import RolloutSet, state_fingerprints

# The recipe's seeds are run_seed * 1000 + 1 (training), + 2 (held-out sample) and + 500 (lookahead
# training pairs). Rollout initial states come from (run_seed + 1000 * seed) * 1000 + 700: always 700
# modulo 1000, so no rollout seed is ever one of those streams, whatever the run or rollout seed.
ROLLOUT_STREAM = 700


def _check_counts(n_initial, steps, seed):
    for name, v, lo in (("n_initial", n_initial, 1), ("steps", steps, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise DataError(f"rollout {name}: expected an integer >= {lo}, got {v!r}")


def rollout_set(target, data=None, *, n_initial: int, steps: int, seed: int, cache_dir=None) -> RolloutSet:
    """``n_initial`` trajectories of ``steps`` + 1 states in loss space: the first ``n_initial`` of
    ``data`` (a trajectory file), else fresh solver trajectories (cached under ``cache_dir``)."""
    _check_counts(n_initial, steps, seed)
    if data is None:
        path, desc = _fresh_rollout_file(target, n_initial, steps, seed, cache_dir)
    else:
        path, desc = data, {"source": str(data)}
    x, y, info = target.load_pairs(path)  # loss space, the model's channel order and grid, validated
    states = _trajectories(x, y, info["pair_ids"], path)
    if states.shape[0] < n_initial or states.shape[1] < steps + 1:
        raise DataError(f"{path}: {states.shape[0]} trajectories of {states.shape[1]} states; rollout health needs "
                        f"{n_initial} of at least {steps + 1} (initial state + {steps} steps)")
    states = states[:n_initial, :steps + 1]
    hours = info.get("timestep_hours")
    desc.update(trajectories=n_initial, steps=steps, timestep_hours=hours,
                lead_hours=[k * hours for k in range(1, steps + 1)] if hours else None,
                state_every="lead k is k model steps after the initial state; its reference is the trajectory's "
                            f"state k intervals{f' ({hours:g} h each)' if hours else ''} later")
    # The same bytes the lookahead pools fingerprint (normalised float32 states, one per time).
    keys = [state_fingerprints(states[b]) for b in range(n_initial)]
    return RolloutSet(initial=states[:, 0].contiguous(), reference=states[:, 1:].contiguous(), description=desc,
                      state_keys=keys)


def _trajectories(x, y, pair_ids, path):
    """(K, T + 1, C, H, W) from a file's consecutive pairs (trajectory-major, T pairs each)."""
    import torch

    n_traj = pair_ids[-1][0] + 1
    if x.shape[0] % n_traj or any(k != i // (x.shape[0] // n_traj) for i, (k, _) in enumerate(pair_ids)):
        raise DataError(f"{path}: the pairs do not form whole trajectories (rollout health needs a 'states' tensor)")
    t = x.shape[0] // n_traj
    xs, ys = x.view(n_traj, t, *x.shape[1:]), y.view(n_traj, t, *y.shape[1:])
    return torch.cat((xs, ys[:, -1:]), dim=1)


def _fresh_rollout_file(target, n_initial, steps, seed, cache_dir):
    """Solver trajectories from the checkpoint's recorded recipe, cached by recipe (as lookahead training pairs)."""
    from .data import cached_solver_states, solver_recipe

    cfg = (target.spec.training or {}).get("config") or {}
    recipe = solver_recipe(target, n_traj=n_initial, n_states=steps + 1,
                           seed=(int(cfg.get("seed", 0)) + 1000 * seed) * 1000 + ROLLOUT_STREAM)
    if recipe is None:
        raise DataError("rollout health needs the bundled shallow-water recipe or trajectory data: this checkpoint "
                        "records no shallow-water data recipe; give a specprobe.th-sfno-data file of trajectories")
    path, cached = cached_solver_states(recipe, kind="rollout", target=target, cache_dir=cache_dir,
                                        description="rollout-health reference trajectories",
                                        generator="specprobe rollout health")
    desc = {"source": "fresh shallow-water trajectories (specprobe/models/th/swe.py, the run's data recipe; "
                      "a seed stream the run and the lookahead never use)",
            "recipe": recipe, "cache_file": str(path), "cached": cached}
    return path, desc


def rollout(target, rs: RolloutSet, *, n_ensemble: int, seed: int):
    """Iterator over leads k = 1..R of (gen (B, E, C, H, W), ref (B, 1, C, H, W)), loss space, no gradients."""
    import torch

    if isinstance(n_ensemble, bool) or not isinstance(n_ensemble, int) or n_ensemble < 1:
        raise ValueError(f"n_ensemble: expected an integer >= 1, got {n_ensemble!r}")
    dev = target.device
    x = rs.initial.to(dev).repeat_interleave(n_ensemble, dim=0)
    generator = torch.Generator(device=dev).manual_seed(int(seed))

    def leads(x):
        b = rs.n_initial
        for k in range(rs.steps):
            with torch.no_grad():  # per step, never across a yield (grad mode is the caller's between leads)
                x = target.model(x, generator)
            yield x.reshape(b, n_ensemble, *x.shape[1:]), rs.reference[:, k, None].to(dev)

    return leads(x)
