"""Train specprobe's bundled default model: a stochastic torch-harmonics SFNO on shallow-water physics.

    python examples/train_swe_sfno.py                      # writes specprobe/data/swe_sfno.pt + swe_heldout.pt
    python examples/train_swe_sfno.py --steps 50 --out /tmp/m.pt --sample-out /tmp/s.pt
    python examples/train_swe_sfno.py --noisy                # specprobe/data/swe_noisy_sfno.pt + swe_noisy_heldout.pt

``--noisy`` trains the second bundled model on the same recipe with stochastic small-scale vorticity
forcing (swe.StochasticForcing) on a finer solver and a calmer flow; its data generator checks on twin
runs that the forced degrees are unpredictable and the large scales are not, and stops (RegimeError)
if they are not; after training it checks that the model's R2 of the change is below 0.1 over the top
quarter of degrees and fails (exit status 3) otherwise.

Data: torch-harmonics' ShallowWaterSolver (balanced random initial states, spun up, then sampled every
``interval_h`` hours; see specprobe/models/th/swe.py); channels h (m), u, v (m/s) on a 64x128 equiangular
grid. Task: the state one step ahead, predicted as a normalised increment (residual). Loss: fme's
EnsembleLoss recipe, 0.9 CRPS + 0.1 energy score, ensemble of 2 (members from input noise). Training
is seeded and deterministic on CPU; longitude rolls (an exact symmetry of the equations) augment it.
See docs/bundled_model.md for what came out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainConfig:
    seed: int = 0
    # data (grid of the model, solver grid and truncation, dynamics, sampling)
    nlat: int = 64
    nlon: int = 128
    grid: str = "equiangular"
    solver_nlat: int = 96
    solver_nlon: int = 192
    solver_lmax: int = 64
    solver_dt: float = 200.0
    mach: float = 2.0
    spinup_h: float = 12.0
    interval_h: float = 3.0
    n_train_traj: int = 12
    train_states: int = 7
    n_heldout_traj: int = 4
    heldout_states: int = 5
    # model
    embed_dim: int = 16
    num_layers: int = 4
    n_noise: int = 4
    # Red noise, C_l ~ (l + 1)^-3: the noise channels feed the first spectral filter directly, and white
    # noise there would be grid-scale power the shallow-water states do not have.
    noise_slope: float = -3.0
    pos_embed: str = "learnable lat"
    decoder_init_scale: float = 0.1
    # optimisation
    steps: int = 500
    batch_size: int = 8
    n_ensemble: int = 2
    lr: float = 3e-3
    lr_final_frac: float = 0.05
    warmup: int = 20
    crps_weight: float = 0.9
    energy_score_weight: float = 0.1
    threads: int = 2
    # stochastic small-scale forcing (swe.StochasticForcing as a dict; None: the noise-free default model)
    forcing: dict | None = None
    check_regime: bool = True

    def sfno_args(self) -> dict:
        return {"img_size": [self.nlat, self.nlon], "grid": self.grid, "grid_internal": "legendre-gauss",
                "scale_factor": 1, "in_chans": 3 + self.n_noise, "out_chans": 3, "embed_dim": self.embed_dim,
                "num_layers": self.num_layers, "pos_embed": self.pos_embed}


# The noisy bundled model (docs/bundled_model.md, "The noisy model"): the default recipe plus random vorticity
# forcing on l 40-63 with a 30-minute memory (much shorter than the 3-hour step) and a 24-hour drag on those
# degrees. A finer solver (lmax 96, so the data's degrees l < 64 are not its hyperdiffusion range; dt 120 s for
# the faster gravity waves there) and a calmer flow (mach 0.5, so small features are not simply carried along
# predictably) make the forced degrees' one-step change mostly a fresh random draw, while their power stays
# close to the unforced run's (the spectrum stays red: whitening still has something to up-weight). 24 h
# spin-up lets the forced field build up. One held-out trajectory of 9 states (8 pairs) keeps the checkpoint and
# its sample under 1 MB.
NOISY_FORCING = {"lmin": 40, "lmax": 64, "tau_h": 0.5, "amplitude": 1.0e-9, "damping_h": 24.0}
NOISY = dict(solver_nlat=144, solver_nlon=288, solver_lmax=96, solver_dt=120.0, mach=0.5, spinup_h=24.0,
             n_heldout_traj=1, heldout_states=9, forcing=NOISY_FORCING)
# The trained model's R2 of the change over the top quarter of degrees (power-weighted over l 48-63, each
# channel) must be below NOISY_R2_MAX, and over l 1-8 above NOISY_LARGE_R2_MIN (the large scales stay
# predictable). Per degree the 8 held-out pairs scatter by ~0.03 around the band value (docs/bundled_model.md).
NOISY_R2_MAX = 0.1
NOISY_LARGE_R2_MIN = 0.3


def _common(cfg: TrainConfig, progress=None) -> dict:
    return dict(interval_h=cfg.interval_h, spinup_h=cfg.spinup_h, nlat=cfg.nlat, nlon=cfg.nlon, grid=cfg.grid,
                solver_nlat=cfg.solver_nlat, solver_nlon=cfg.solver_nlon, lmax=cfg.solver_lmax, dt=cfg.solver_dt,
                mach=cfg.mach, progress=progress, **({"forcing": cfg.forcing} if cfg.forcing else {}))


def check_data_regime(cfg: TrainConfig, log=print) -> dict | None:
    """For forced data: twin runs (4 trajectories, 3 branch points each) must show the noisy regime, else RegimeError."""
    if not cfg.forcing or not cfg.check_regime:
        return None
    from specprobe.models.th import swe

    common = _common(cfg)
    common.pop("progress")
    stats = swe.regime_statistics(4, 4, seed=cfg.seed * 1000 + 5, **common)
    summary = swe.check_regime(stats)  # raises swe.RegimeError when the forcing misses the regime
    summary["noise_fraction_by_l"] = {c: stats["noise_fraction"][i].tolist() for i, c in enumerate(swe.CHANNELS)}
    summary["change_over_state_by_l"] = {c: (stats["change"][i] / stats["state"][i]).tolist()
                                         for i, c in enumerate(swe.CHANNELS)}
    summary["state_power_by_l"] = {c: stats["state"][i].tolist() for i, c in enumerate(swe.CHANNELS)}
    log("regime check (twin runs): " + ", ".join(
        f"{c} noise fraction {v['noise_fraction_top']:.2f} over l {summary['top_degrees'][0]}-{summary['top_degrees'][1]}, "
        f"{v['noise_fraction_large']:.3f} over l 1-8" for c, v in summary["channels"].items()))
    return summary


def make_data(cfg: TrainConfig, progress=None) -> dict:
    """Training and held-out trajectories (K, T+1, 3, nlat, nlon), physical units; disjoint seeds."""
    from specprobe.models.th import swe

    common = _common(cfg, progress)
    return {"train": swe.trajectories(cfg.n_train_traj, cfg.train_states, seed=cfg.seed * 1000 + 1, **common),
            "heldout": swe.trajectories(cfg.n_heldout_traj, cfg.heldout_states, seed=cfg.seed * 1000 + 2, **common)}


def predictability_scores(model, x, y, *, n_ensemble: int = 4, seed: int = 7, batch_size: int = 4) -> dict:
    """R2 of the change by degree (fair, infinite-ensemble mean; specprobe.spectral.predictability), loss space."""
    import torch

    from specprobe.spectral import Predictability, predictability_from_fields

    g = torch.Generator().manual_seed(seed)
    sums = None
    with torch.no_grad():
        for s in range(0, x.shape[0], batch_size):
            xb, yb = x[s : s + batch_size], y[s : s + batch_size]
            gen = model(xb.repeat_interleave(n_ensemble, 0), g).reshape(xb.shape[0], n_ensemble, *xb.shape[1:])
            part = predictability_from_fields(gen, yb[:, None], xb[:, None])
            sums = part if sums is None else {k: sums[k] + part[k] for k in sums}
    from specprobe.spectral.predictability import band_r2

    p = Predictability.from_sums(sums, n_ensemble=n_ensemble)
    n_l = p.r2.shape[-1]
    top = n_l - n_l // 4
    return {"r2_by_l": p.r2.tolist(), "spread_skill_by_l": p.spread_skill.tolist(),
            "change_over_state_by_l": p.change_over_state.tolist(), "top_quarter_from": top,
            "top_quarter_r2_max": [float(r[top:].max()) for r in p.r2],
            "top_quarter_r2": [band_r2(sums, c, top, n_l - 1, n_ensemble=n_ensemble) for c in range(p.r2.shape[0])],
            "top_quarter_degrees_r2_above_0.1": [int((r[top:] >= 0.1).sum()) for r in p.r2],
            "low_band_r2": [float(1 - (sums["error"][c, 1:9].sum() - sums["spread"][c, 1:9].sum() / n_ensemble)
                                  / sums["change"][c, 1:9].sum()) for c in range(p.r2.shape[0])],
            "n_ensemble": n_ensemble, "pairs": int(x.shape[0])}


def build(cfg: TrainConfig, init_seed: int):
    import torch

    from specprobe.models.th.model import StochasticSFNO

    torch.manual_seed(init_seed)
    return StochasticSFNO(cfg.sfno_args(), n_state=3, n_noise=cfg.n_noise, noise_slope=cfg.noise_slope, residual=True)


def start_point(model, cfg: TrainConfig):
    """Shrink the decoder so the residual model starts near persistence, not at O(1) random increments.

    (torch-harmonics' default init makes the untrained SFNO's output O(1) in normalised units, far
    larger than a 3-hour change; unlearning that junk cost most of a short run.)
    """
    import torch

    with torch.no_grad():
        for p in model.sfno.decoder.parameters():
            p.mul_(cfg.decoder_init_scale)
    return model


def scores(model, x, y, *, n_ensemble: int, seed: int, batch_size: int = 8) -> dict:
    """Held-out scores in loss (normalised) space; grid-point means (not area-weighted), like the loss."""
    import torch

    from specprobe.spectral import crps, energy_score_loss, ensemble_loss

    g = torch.Generator().manual_seed(seed)
    acc = {"loss": 0.0, "crps": 0.0, "energy_score": 0.0, "mse": torch.zeros(3), "persistence_mse": torch.zeros(3),
           "climatology_mse": torch.zeros(3), "persistence_crps": 0.0, "spread": torch.zeros(3)}
    n = x.shape[0]
    with torch.no_grad():
        for s in range(0, n, batch_size):
            xb, yb = x[s : s + batch_size], y[s : s + batch_size]
            b = xb.shape[0]
            gen = model(xb.repeat_interleave(n_ensemble, 0), g).reshape(b, n_ensemble, *xb.shape[1:])
            tgt = yb[:, None]
            w = b / n
            acc["loss"] += w * float(ensemble_loss(gen, tgt, crps_weight=0.9, energy_score_weight=0.1))
            acc["crps"] += w * float(crps(gen, tgt).mean())
            acc["energy_score"] += w * float(energy_score_loss(gen, tgt))
            acc["persistence_crps"] += w * float((xb - yb).abs().mean())
            acc["mse"] += w * ((gen.mean(1) - yb) ** 2).mean((0, 2, 3))
            acc["persistence_mse"] += w * ((xb - yb) ** 2).mean((0, 2, 3))
            acc["climatology_mse"] += w * (yb**2).mean((0, 2, 3))
            acc["spread"] += w * gen.var(1, unbiased=True).mean((0, 2, 3)) if n_ensemble > 1 else 0.0
    out = {k: v for k, v in acc.items() if isinstance(v, float)}
    for k in ("mse", "persistence_mse", "climatology_mse"):
        out[k.replace("mse", "rmse")] = acc[k].sqrt().tolist()
    out["ensemble_spread"] = acc["spread"].sqrt().tolist()
    return out


def train(cfg: TrainConfig, *, data: dict | None = None, progress: bool = True, log=print):
    """Train; returns (model, means, stds, metadata, data). ``data`` reuses trajectories from make_data."""
    import torch

    from specprobe.models.th import swe
    from specprobe.spectral import ensemble_loss

    torch.set_num_threads(cfg.threads)
    t0 = time.time()
    bar = _Bar(progress)
    regime = check_data_regime(cfg, log=log)
    with bar:
        if data is None:
            task = bar.add("shallow-water data (simulated hours)")
            data = make_data(cfg, progress=lambda done, total: bar.update(task, done, total))
        t_data = time.time() - t0
        x_phys, y_phys = swe.pairs(data["train"])
        # one mean/std per channel over all training states and grid points
        means = data["train"].mean(dim=(0, 1, 3, 4))
        stds = data["train"].std(dim=(0, 1, 3, 4))
        norm = lambda t: (t - means.view(3, 1, 1)) / stds.view(3, 1, 1)  # noqa: E731
        x, y = norm(x_phys), norm(y_phys)
        hx, hy = (norm(t) for t in swe.pairs(data["heldout"]))

        model = start_point(build(cfg, cfg.seed), cfg)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: _lr_factor(k, cfg))
        pick = torch.Generator().manual_seed(cfg.seed * 1000 + 3)
        noise = torch.Generator().manual_seed(cfg.seed * 1000 + 4)
        losses = []
        task = bar.add("training (Adam steps)")
        t1 = time.time()
        for step in range(cfg.steps):
            idx = torch.randint(0, x.shape[0], (cfg.batch_size,), generator=pick)
            shift = torch.randint(0, cfg.nlon, (cfg.batch_size,), generator=pick)
            xb = torch.stack([x[i].roll(int(k), dims=-1) for i, k in zip(idx, shift)])
            yb = torch.stack([y[i].roll(int(k), dims=-1) for i, k in zip(idx, shift)])
            # fme's ensemble layout: each sample repeated E times in a row, every row its own noise
            gen = model(xb.repeat_interleave(cfg.n_ensemble, 0), noise)
            gen = gen.reshape(cfg.batch_size, cfg.n_ensemble, *xb.shape[1:])
            loss = ensemble_loss(gen, yb[:, None], crps_weight=cfg.crps_weight,
                                 energy_score_weight=cfg.energy_score_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.update(task, step + 1, cfg.steps, f"loss {sum(losses[-20:]) / len(losses[-20:]):.4f}")
        t_train = time.time() - t1
    untrained = build(cfg, cfg.seed + 12345)
    n_tail = max(1, min(50, cfg.steps // 5))
    result = {
        "train_loss_last_steps": sum(losses[-n_tail:]) / n_tail,
        "train_loss_last_steps_n": n_tail,
        "train": scores(model, x[: hx.shape[0]], y[: hx.shape[0]], n_ensemble=cfg.n_ensemble, seed=7),
        "validation": scores(model, hx, hy, n_ensemble=cfg.n_ensemble, seed=7),
        "validation_untrained": scores(untrained, hx, hy, n_ensemble=cfg.n_ensemble, seed=7),
        "validation_start": scores(start_point(build(cfg, cfg.seed), cfg), hx, hy, n_ensemble=cfg.n_ensemble, seed=7),
        "validation_predictability": predictability_scores(model, hx, hy),
    }
    if regime is not None:
        result["data_regime"] = regime
    meta = {
        "config": dataclasses.asdict(cfg),
        "data": {"source": "torch_harmonics.examples.ShallowWaterSolver, balanced random initial states "
                           "(specprobe/models/th/swe.py)"
                           + (", stochastic small-scale vorticity forcing (swe.StochasticForcing)" if cfg.forcing else ""),
                 "forcing": cfg.forcing,
                 "channels": list(swe.CHANNELS), "units": list(swe.UNITS), "timestep_hours": cfg.interval_h,
                 "train_trajectories": cfg.n_train_traj, "train_pairs": int(x.shape[0]),
                 "heldout_trajectories": cfg.n_heldout_traj, "heldout_pairs": int(hx.shape[0]),
                 "augmentation": "random longitude roll per sample",
                 "normalization": "per-channel mean/std over all training states and grid points"},
        "task": "one step ahead, residual: next = state + SFNO(state, noise) in normalised units",
        "loss": {"recipe": "fme EnsembleLoss", "crps_weight": cfg.crps_weight,
                 "energy_score_weight": cfg.energy_score_weight, "n_ensemble": cfg.n_ensemble,
                 "function": "specprobe.spectral.ensemble_loss"},
        "optimizer": {"name": "Adam", "lr": cfg.lr, "schedule": "linear warmup then cosine decay",
                      "warmup": cfg.warmup, "lr_final_frac": cfg.lr_final_frac, "batch_size": cfg.batch_size},
        "steps": cfg.steps, "seed": cfg.seed,
        "scores": result,
        "score_notes": ("normalised (loss-space) units, grid-point means, noise seed 7; train = the first N "
                        "training pairs, validation = all N held-out pairs (the bundled sample); rmse of the "
                        "ensemble mean; persistence = state unchanged; climatology = the training mean; "
                        "untrained = same constructor, torch-harmonics default init (seed + 12345); start = the "
                        "initial weights of this run (default init, decoder scaled by decoder_init_scale)"),
        "wall_time_s": {"data": round(t_data, 1), "training": round(t_train, 1), "total": round(time.time() - t0, 1)},
        "library_versions": _versions(),
        "machine": f"{platform.machine()}, {cfg.threads} torch threads",
    }
    return model, means.tolist(), stds.tolist(), meta, data


def _lr_factor(k: int, cfg: TrainConfig) -> float:
    if k < cfg.warmup:
        return (k + 1) / cfg.warmup
    frac = (k - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr_final_frac + (1 - cfg.lr_final_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def _versions() -> dict:
    import numpy
    import torch
    import torch_harmonics

    import specprobe

    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "torch_harmonics": str(torch_harmonics.__version__), "numpy": str(numpy.__version__),
            "specprobe": specprobe.__version__}


class _Bar:
    """A rich progress bar, or nothing (tests)."""

    def __init__(self, enabled: bool):
        self.p = None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                              TimeElapsedColumn())

    def __enter__(self):
        if self.p:
            self.p.__enter__()
        return self

    def __exit__(self, *exc):
        if self.p:
            self.p.__exit__(*exc)

    def add(self, what):
        return self.p.add_task(what, total=None, info="") if self.p else None

    def update(self, task, done, total, info=""):
        if self.p:
            self.p.update(task, completed=done, total=total, info=info)


def save(model, means, stds, meta, data, cfg: TrainConfig, out, sample_out, *, encoding: str | None = None) -> None:
    from specprobe.models.th import swe
    from specprobe.models.th.checkpoint import save_checkpoint
    from specprobe.models.th.data import save_sample

    save_checkpoint(out, model, channel_names=swe.CHANNELS, units=swe.UNITS, long_names=swe.LONG_NAMES,
                    means=means, stds=stds, data_grid=cfg.grid, training=meta)
    if sample_out is not None:
        save_sample(sample_out, data["heldout"], channel_names=swe.CHANNELS, units=swe.UNITS,
                    grid={"nlat": cfg.nlat, "nlon": cfg.nlon, "type": cfg.grid}, timestep_hours=cfg.interval_h,
                    description=f"held-out shallow-water trajectories ({cfg.n_heldout_traj} x {cfg.heldout_states} "
                                f"states, every {cfg.interval_h:g} h), physical units; never seen in training",
                    source={"seed": cfg.seed * 1000 + 2, "generator": "examples/train_swe_sfno.py make_data",
                            **({"forcing": cfg.forcing} if cfg.forcing else {})},
                    encoding=encoding)


def main(argv=None) -> int:
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=TrainConfig.steps)
    ap.add_argument("--seed", type=int, default=TrainConfig.seed)
    ap.add_argument("--out", type=Path, default=root / "specprobe" / "data" / "swe_sfno.pt")
    ap.add_argument("--sample-out", type=Path, default=root / "specprobe" / "data" / "swe_heldout.pt")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--noisy", action="store_true", help="the noisy bundled model: stochastic small-scale forcing "
                    "(writes specprobe/data/swe_noisy_sfno.pt + swe_noisy_heldout.pt unless --out/--sample-out)")
    ap.add_argument("--forcing-amplitude", type=float, default=None, help="with --noisy: RMS vorticity forcing (s^-2)")
    ap.add_argument("--forcing-damping-h", type=float, default=None, help="with --noisy: drag e-folding time (h)")
    ap.add_argument("--no-regime-check", action="store_true", help="skip the forced data's regime check")
    ap.add_argument("--threads", type=int, default=TrainConfig.threads)
    a = ap.parse_args(argv)
    extra = {}
    if a.noisy:
        forcing = dict(NOISY_FORCING)
        if a.forcing_amplitude is not None:
            forcing["amplitude"] = a.forcing_amplitude
        if a.forcing_damping_h is not None:
            forcing["damping_h"] = a.forcing_damping_h
        extra = dict(NOISY, forcing=forcing)
        if a.out == ap.get_default("out"):
            a.out = root / "specprobe" / "data" / "swe_noisy_sfno.pt"
        if a.sample_out == ap.get_default("sample_out"):
            a.sample_out = root / "specprobe" / "data" / "swe_noisy_heldout.pt"
    cfg = TrainConfig(steps=a.steps, seed=a.seed, threads=a.threads, check_regime=not a.no_regime_check, **extra)
    model, means, stds, meta, data = train(cfg, progress=not a.no_progress)
    # The noisy model's sample is stored as 16-bit integers (lzma): 8 pairs within the 1 MB budget.
    save(model, means, stds, meta, data, cfg, a.out, a.sample_out, encoding="int16-lzma" if a.noisy else None)
    v, u = meta["scores"]["validation"], meta["scores"]["validation_untrained"]
    print(json.dumps({"wall_time_s": meta["wall_time_s"], "train_loss": meta["scores"]["train_loss_last_steps"],
                      "validation": v}, indent=1))
    print(f"held-out ensemble-mean RMSE (h, u, v; normalised) {_fmt(v['rmse'])} vs persistence "
          f"{_fmt(v['persistence_rmse'])} vs climatology {_fmt(v['climatology_rmse'])}")
    print(f"held-out CRPS {v['crps']:.4f} vs untrained {u['crps']:.4f} vs persistence {v['persistence_crps']:.4f}")
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.2f} MB) and {a.sample_out} "
          f"({a.sample_out.stat().st_size / 1e6:.2f} MB)")
    pr = meta["scores"]["validation_predictability"]
    print(f"held-out R2 of the change (h, u, v): low band (l 1-8) {_fmt(pr['low_band_r2'])}; over l >= "
          f"{pr['top_quarter_from']} {_fmt(pr['top_quarter_r2'])}, largest single degree {_fmt(pr['top_quarter_r2_max'])}, "
          f"degrees >= 0.1: {pr['top_quarter_degrees_r2_above_0.1']}")
    if a.noisy and not (max(pr["top_quarter_r2"]) < NOISY_R2_MAX and min(pr["low_band_r2"]) > NOISY_LARGE_R2_MIN):
        print(f"NOT IN THE NOISY REGIME: the model's R2 over the top quarter is {_fmt(pr['top_quarter_r2'])} (need < "
              f"{NOISY_R2_MAX}) and over l 1-8 {_fmt(pr['low_band_r2'])} (need > {NOISY_LARGE_R2_MIN})", file=sys.stderr)
        return 3
    return 0


def _fmt(xs) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in xs) + ")"


if __name__ == "__main__":
    sys.exit(main())
