"""Train a tiny ACE model with fme's own trainer, then probe its ``ckpt.tar`` with specprobe.

    pip install 'specprobe[fme]'
    python examples/train_tiny_fme.py --out /tmp/tiny_fme        # ~1-3 minutes on a laptop CPU

1. Data: a toy hourly series on a 32 x 64 Legendre-Gauss grid with red spectra at every degree
   (rotating, damped red noise; see ``red_rotating_states``), written as ACE-format netCDF with
   xarray: variables ``h``, ``u``, ``v`` with dims (time, lat, lon). (torch-harmonics'
   ShallowWaterSolver is only stable here with a 2/3-rule truncation that leaves the upper third
   of the degrees empty.) The first 85% of the states train, the rest are the held-out probe data.
2. Training: ``fme.ace.train.train.main`` on a YAML config it writes (NoiseConditionedSFNO,
   EnsembleLoss CRPS + energy score, residual prediction, EMA). fme writes
   ``<out>/exp/training_checkpoints/ckpt.tar`` and ``<out>/exp/config.yaml``.
3. Probe: ``specprobe.probe(checkpoint=.../ckpt.tar, data=<held-out dir>, ...)``: the per-degree
   gradient of the energy score, baseline vs per-sample whitening (gamma 0.5).

On a shared or small machine, ``OMP_NUM_THREADS=1`` can make tiny models much faster.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path

NLAT, NLON = 32, 64
NAMES = ["h", "u", "v"]


# name: (mean, std, power slope, rotation in degrees of longitude per hour)
VARIABLES = {"h": (5.4e4, 2.0e3, -2.5, 2.0), "u": (5.0, 10.0, -1.8, 3.0), "v": (0.0, 8.0, -1.8, 3.0)}


def red_rotating_states(n_states: int, *, seed: int = 0):
    """(n_states, 3, NLAT, NLON) float32 with red degree spectra P(l) ~ l^slope, evolving hourly.

    Per variable, spherical-harmonic coefficients follow a_lm(t+1) = rho_l e^{-i m w} a_lm(t) +
    sqrt(1 - rho_l^2) sigma_l xi: a solid-body rotation by w, damping rho_l = exp(-l(l+1)/400) that
    makes small scales decorrelate faster, and fresh red noise that keeps the spectrum stationary.
    A toy, not physics, but with ACE-like red spectra at every degree: the per-degree gradient
    decline follows the spectra of what the filters see (docs/bundled_model.md, white-noise ablation).
    """
    import torch
    from torch_harmonics.sht import InverseRealSHT  # the original class (fme replaces torch_harmonics.InverseRealSHT)

    g = torch.Generator().manual_seed(seed)
    isht = InverseRealSHT(NLAT, NLON, grid="legendre-gauss").double()
    L, M = isht.lmax, isht.mmax
    l = torch.arange(L, dtype=torch.float64)[:, None]
    m = torch.arange(M, dtype=torch.float64)[None, :]
    valid = (m <= l).double()
    rho = torch.exp(-l * (l + 1) / 400.0)
    out = []
    for name, (mean, std, slope, w_deg) in VARIABLES.items():
        power = torch.where(l > 0, l.clamp(min=1) ** slope, torch.zeros(()))
        power = power * (4 * math.pi / power.sum())  # unit variance on the sphere
        sigma = (power / (2 * l + 1)).sqrt() * valid

        def noise():
            re, im = torch.randn(L, M, generator=g, dtype=torch.float64), torch.randn(L, M, generator=g, dtype=torch.float64)
            im[:, 0] = 0.0
            scale = torch.where(m == 0, 1.0, 1 / math.sqrt(2.0))
            return torch.complex(re * scale, im * scale) * sigma

        phase = torch.exp(-1j * m * math.radians(w_deg))
        a = noise()
        series = []
        for _ in range(n_states):
            series.append(mean + std * isht(a))
            a = rho * phase * a + torch.sqrt(1 - rho**2) * noise()
        out.append(torch.stack(series))
    return torch.stack(out, dim=1).float()


def write_netcdf(path: Path, states, times, lat):
    import numpy as np
    import xarray as xr

    lon = np.arange(NLON) * 360.0 / NLON
    units = {"h": "m2 s-2", "u": "m s-1", "v": "m s-1"}
    long_names = {"h": "geopotential-like", "u": "eastward-wind-like", "v": "northward-wind-like"}
    data = {n: (("time", "lat", "lon"), states[:, i].numpy(), {"units": units[n], "long_name": long_names[n]})
            for i, n in enumerate(NAMES)}
    path.parent.mkdir(parents=True, exist_ok=True)
    xr.Dataset(data, coords={"time": times, "lat": lat, "lon": lon}).to_netcdf(path)


def make_data(out: Path, n_states: int):
    import cftime
    import numpy as np

    states = red_rotating_states(n_states)
    # torch-harmonics' Legendre-Gauss latitudes (north to south, the row order of its transforms)
    lat = np.degrees(np.arcsin(np.polynomial.legendre.leggauss(NLAT)[0]))[::-1].copy()
    times = [cftime.DatetimeJulian(2000, 1, 1) + datetime.timedelta(hours=i) for i in range(n_states)]
    n_train = int(0.85 * n_states)
    write_netcdf(out / "train" / "data.nc", states[:n_train], times[:n_train], lat)
    write_netcdf(out / "heldout" / "data.nc", states[n_train:], times[n_train:], lat)
    x = states[:n_train].double()
    dx = x[1:] - x[:-1]
    stats = {n: {"mean": float(x[:, i].mean()), "std": float(x[:, i].std()), "tendency_std": float(dx[:, i].std())}
             for i, n in enumerate(NAMES)}
    return stats


def train_config(out: Path, stats: dict, epochs: int, n_forward_steps: int = 1) -> dict:
    means = {n: s["mean"] for n, s in stats.items()}
    return {
        "experiment_dir": str(out / "exp"), "max_epochs": epochs, "save_checkpoint": True, "seed": 0,
        "train_evaluation_samples": 8,
        "logging": {"log_to_screen": True, "log_to_wandb": False, "log_to_file": True},
        "train_loader": {"dataset": {"data_path": str(out / "train")}, "batch_size": 4, "num_data_workers": 0},
        "validation": {"loader": {"dataset": {"data_path": str(out / "heldout")}, "batch_size": 4, "num_data_workers": 0}},
        "optimization": {"optimizer_type": "Adam", "lr": 2e-3},
        "stepper": {"step": {"type": "single_module", "config": {
            "builder": {"type": "NoiseConditionedSFNO",
                        "config": {"embed_dim": 16, "num_layers": 4, "noise_embed_dim": 8, "data_grid": "legendre-gauss"}},
            "in_names": NAMES, "out_names": NAMES, "residual_prediction": True,
            "normalization": {
                "network": {"means": means, "stds": {n: s["std"] for n, s in stats.items()}},
                "residual": {"means": {n: 0.0 for n in NAMES}, "stds": {n: s["tendency_std"] for n, s in stats.items()}},
            }}}},
        # fme 2026.10.0 cannot train with crps_weight 0 (its per-channel loss report fails), so mix in CRPS
        "stepper_training": {"n_forward_steps": n_forward_steps, "n_ensemble": 2, "loss": {
            "type": "EnsembleLoss", "kwargs": {"crps_weight": 0.5, "energy_score_weight": 0.5}}},
        "ema": {"decay": 0.99},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tiny_fme_run"))
    parser.add_argument("--states", type=int, default=240, help="hourly states to write")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--probe-samples", type=int, default=8)
    parser.add_argument("--n-forward-steps", type=int, default=1, help="training rollout length (ACE2 configs: 2)")
    args = parser.parse_args(argv)

    import yaml

    args.out.mkdir(parents=True, exist_ok=True)
    stats = make_data(args.out, args.states)
    config_path = args.out / "train.yaml"
    config_path.write_text(yaml.safe_dump(train_config(args.out, stats, args.epochs, args.n_forward_steps)))

    from fme.ace.train.train import main as fme_train  # fme's own trainer and checkpoint writer

    fme_train(str(config_path))
    ckpt = args.out / "exp" / "training_checkpoints" / "ckpt.tar"
    print(f"fme wrote {ckpt}")

    import specprobe

    result = specprobe.probe(checkpoint=ckpt, data=str(args.out / "heldout"), n_samples=args.probe_samples,
                             n_ensemble=2, variants=("per_sample:gamma=0.5",), seed=0, device="cpu")
    (args.out / "probe.json").write_text(result.to_json(indent=1))
    print(f"probe result: {args.out / 'probe.json'}")
    for name in result.variant_names:
        st = result.stats[name]
        ratio = st.get("decline_ratio")
        print(f"  {name:40s} low/high-degree gradient ratio {ratio:8.2f}" if isinstance(ratio, float) and math.isfinite(ratio)
              else f"  {name:40s} {json.dumps({k: st[k] for k in ('decline_ratio', 'spearman_rho') if k in st})}")


if __name__ == "__main__":
    main()
