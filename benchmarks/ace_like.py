"""ACE-like fme checkpoints for the benchmarks, written with fme's own code (as tests/fme_fixtures.py).

NoiseConditionedSFNO, 8 layers, noise_embed_dim 32, 40 inputs (36 prognostic + 4 forcings) and 44
outputs (36 prognostic + 8 diagnostics), Legendre-Gauss grid, unit normalisation; the probe and the
baseline both run on fme's synthetic fields for the checkpoint's channels.

    python benchmarks/ace_like.py OUT.tar --nlat 90 --nlon 180 --embed 256
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import pathlib

import numpy as np

PROGNOSTIC = [f"p{i:02d}" for i in range(36)]
FORCINGS = [f"f{i}" for i in range(4)]
DIAGNOSTICS = [f"d{i}" for i in range(8)]
IN_NAMES = PROGNOSTIC + FORCINGS
OUT_NAMES = PROGNOSTIC + DIAGNOSTICS


def build_checkpoint(path, *, nlat: int, nlon: int, embed_dim: int, num_layers: int = 8, noise_embed_dim: int = 32,
                     filter_num_groups: int = 1, spectral_ratio: float | None = None, seed: int = 0) -> pathlib.Path:
    import torch
    from fme.ace.stepper.single_module import StepperConfig
    from fme.core.coordinates import LatLonCoordinates, NullVerticalCoordinate
    from fme.core.dataset_info import DatasetInfo
    from fme.core.normalizer import NetworkAndLossNormalizationConfig, NormalizationConfig
    from fme.core.registry.module import ModuleSelector
    from fme.core.step import SingleModuleStepConfig, StepSelector

    torch.manual_seed(seed)
    names = sorted(set(IN_NAMES) | set(OUT_NAMES))
    norm = NetworkAndLossNormalizationConfig(
        network=NormalizationConfig(means={n: 0.0 for n in names}, stds={n: 1.0 for n in names}),
        residual=NormalizationConfig(means={n: 0.0 for n in names}, stds={n: 1.0 for n in names}))
    builder = {"embed_dim": embed_dim, "num_layers": num_layers, "noise_embed_dim": noise_embed_dim,
               "filter_num_groups": filter_num_groups}
    if spectral_ratio is not None:
        builder["spectral_ratio"] = spectral_ratio
    config = StepperConfig(step=StepSelector(type="single_module", config=dataclasses.asdict(SingleModuleStepConfig(
        builder=ModuleSelector(type="NoiseConditionedSFNO", config=builder),
        in_names=IN_NAMES, out_names=OUT_NAMES, normalization=norm, residual_prediction=True))))
    lat = np.degrees(np.arcsin(np.polynomial.legendre.leggauss(nlat)[0]))
    info = DatasetInfo(horizontal_coordinates=LatLonCoordinates(lat=torch.tensor(lat, dtype=torch.float32),
                                                                lon=torch.arange(nlon, dtype=torch.float32) * 360.0 / nlon),
                       vertical_coordinate=NullVerticalCoordinate(), timestep=datetime.timedelta(hours=6))
    stepper = config.get_stepper(dataset_info=info)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # fme initialises the noise-conditioning weights to zero: members would coincide
        for name, p in stepper.modules.named_parameters():
            if name.endswith(("W_scale_2d.weight", "W_bias_2d.weight")):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    n_params = sum(p.numel() for p in stepper.modules.parameters())
    torch.save({"epoch": 1, "num_batches_seen": 1, "stepper": stepper.get_state()}, path)
    del stepper
    return pathlib.Path(path), n_params


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--nlat", type=int, default=45)
    ap.add_argument("--nlon", type=int, default=90)
    ap.add_argument("--embed", type=int, default=128)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--filter-num-groups", type=int, default=1)
    ap.add_argument("--spectral-ratio", type=float, default=None)
    a = ap.parse_args()
    path, n = build_checkpoint(a.out, nlat=a.nlat, nlon=a.nlon, embed_dim=a.embed, num_layers=a.layers,
                               filter_num_groups=a.filter_num_groups, spectral_ratio=a.spectral_ratio)
    print(f"{path}: {n:,} parameters")


if __name__ == "__main__":
    main()
