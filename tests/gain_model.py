"""A hand-computable ProbeTarget: one per-degree gain per channel, out_hat[c, l, m] = g[c, l] * x_hat[c, l, m].

With one ensemble member the energy score is the skill term alone, so the loss gradient per degree
has a closed form (see ``closed_form_gradient``) to hold the engine against.
"""

import numpy as np
import torch

from specprobe.models.base import Batch, SpectralParam
from specprobe.spectral import loss_scaling


class GainTarget:
    family = "test-gain"
    data_grid = loss_grid = "legendre-gauss"

    def __init__(self, nlat=8, nlon=16, channels=2, n_total=6, seed=0, l0_bypassed=False):
        from torch_harmonics.sht import InverseRealSHT, RealSHT

        self.nlat, self.nlon = nlat, nlon
        self.channel_names = [f"c{i}" for i in range(channels)]
        self.device = torch.device("cpu")
        self.sht = RealSHT(nlat, nlon, grid="legendre-gauss").double()
        self.isht = InverseRealSHT(nlat, nlon, grid="legendre-gauss").double()
        g = torch.Generator().manual_seed(seed)
        self.gain = torch.nn.Parameter(1.0 + 0.5 * torch.rand(channels, nlat, generator=g, dtype=torch.float64))
        self.x = torch.randn(n_total, channels, nlat, nlon, generator=g, dtype=torch.float64)
        self.y = torch.randn(n_total, channels, nlat, nlon, generator=g, dtype=torch.float64)
        self.l0_bypassed = l0_bypassed

    def parameters(self):
        return [SpectralParam("gain", self.gain, degree_axis=1, layout="(C, L) real", l0_bypassed=self.l0_bypassed)]

    def describe(self):
        return {"family": self.family}

    def batches(self, data, *, n_samples, batch_size, seed):
        for start in range(0, n_samples, batch_size):
            stop = min(start + batch_size, n_samples)
            yield Batch((self.x[start:stop], self.y[start:stop]), size=stop - start)

    def forward(self, batch, *, n_ensemble, seed):
        x, y = batch.payload
        out = self.isht(self.gain[None, :, :, None] * self.sht(x))
        # Every member identical (no noise): the spread term is zero.
        return out[:, None].expand(-1, n_ensemble, -1, -1, -1), y[:, None]

    def x_hat(self, n):
        return self.sht(self.x[:n]), self.sht(self.y[:n])


def closed_form_gradient(target: GainTarget, n_samples: int) -> np.ndarray:
    """d/dg[c,l] of mean_b mean_c sum_{l,m} w_m |g x - y| / (2 sqrt(LM)), for real g.

    d|g x - y|/dg = Re(conj(g x - y) x) / |g x - y|.
    """
    x_hat, y_hat = (t.detach().numpy() for t in target.x_hat(n_samples))
    g = target.gain.detach().numpy()[None, :, :, None]
    # fme's (L, M) = (nlat, nlon // 2 + 1), torch-harmonics 0.8.0's defaults; 0.9 returns fewer orders
    # (the dropped m >= L slots are zero) but the loss still divides by 2 sqrt(L M) of the convention
    L, M = target.nlat, target.nlon // 2 + 1
    w = np.full(x_hat.shape[-1], 2.0)
    w[0] = 1.0
    r = g * x_hat - y_hat
    d = np.where(np.abs(r) > 0, np.real(np.conj(r) * x_hat) / np.where(np.abs(r) > 0, np.abs(r), 1), 0.0)
    per = (d * w).sum(-1) / loss_scaling(L, M)  # (B, C, L)
    return per.mean(0) / x_hat.shape[1]  # mean over samples and channels
