"""Per-degree means estimated from a seeded sample of each parameter's elements, with standard errors.

Why: the GSNR and the steady-state Adam step are means over a degree's elements of a per-element
quantity that needs the per-element second moment of the gradients. Keeping that second moment for
every element costs 4 bytes per element per variant: at ACE scale (100 M per-degree elements) a
K = 8 probe spends more on it than a training step's whole activation memory. A mean over 131 072
elements is known to a fraction of a percent from a few thousand of them, so the probe keeps the
second moment for a seeded subset of columns of each parameter's (degree, rest) view, the same
columns at every degree and for every variant (ratios between variants then compare like with like).

Estimator (stratified ratio estimator, sampling without replacement): each (parameter, degree) row is
a stratum with ``population`` elements of which ``n`` are sampled. Per degree, the mean of y over the
elements where z = 1 (z = 1 everywhere for the Adam step; z = "variance > 0" for the GSNR) is
    r = sum_s T_y,s / sum_s T_z,s,   T_.,s = population_s / n_s * (sum over the sample of the stratum),
    var(r) ~= sum_s population_s^2 (1 - n_s / population_s) / n_s * S^2(y - r z)_s / (sum_s T_z,s)^2,
S^2 the sample variance of the residual d = y - r z. When every element is sampled (n = population)
the estimate is the exact mean and the standard error is 0.
"""

from __future__ import annotations

import numpy as np


class ElementSample:
    """Flat indices (into a contiguous real view) of the sampled elements of one per-degree parameter.

    ``index`` has shape (n_degrees_of_parameter, n): row l holds the same ``n`` seeded columns of the
    parameter's (degree, everything else) view, at degree l. Built once per parameter and shared by
    every variant's accumulator.
    """

    def __init__(self, shape, degree_axis: int, per_degree: int, seed: int = 0):
        import torch

        shape = tuple(int(s) for s in shape)
        axis = degree_axis % len(shape)
        rest = shape[:axis] + shape[axis + 1:]
        self.population = int(np.prod(rest, dtype=np.int64)) if rest else 1
        self.n = min(per_degree, self.population)
        gen = torch.Generator().manual_seed(seed)
        cols = torch.randperm(self.population, generator=gen)[:self.n].sort().values
        strides = torch.ones(len(shape), dtype=torch.int64)
        for d in range(len(shape) - 2, -1, -1):
            strides[d] = strides[d + 1] * shape[d + 1]
        rest_strides = torch.cat([strides[:axis], strides[axis + 1:]])
        offset = torch.zeros(self.n, dtype=torch.int64)
        remaining = cols.clone()
        for size, stride in zip(reversed(rest), reversed(rest_strides.tolist())):
            offset += (remaining % size) * stride
            remaining //= size
        degree_offsets = torch.arange(shape[axis], dtype=torch.int64) * strides[axis]
        # Stored column by column: a column's elements at successive degrees are usually close in
        # memory (the degree axis is the last or next-to-last of SFNO filters), so the gather walks
        # short runs instead of striding over the whole tensor once per degree.
        numel = int(np.prod(shape, dtype=np.int64))
        self._by_column = (offset[:, None] + degree_offsets[None, :]).to(torch.int64 if numel >= 2**31 else torch.int32)
        self.shape = shape

    @property
    def index(self):
        """(n_degrees, n) flat indices: row l holds the sampled columns at degree l."""
        return self._by_column.T

    @property
    def complete(self) -> bool:
        return self.n == self.population

    def to(self, device) -> "ElementSample":
        self._by_column = self._by_column.to(device)
        return self

    def take(self, flat):
        """The sampled elements of a contiguous tensor's flat view, as an (n_degrees, n) view."""
        return flat.index_select(0, self._by_column.reshape(-1)).reshape(self._by_column.shape).T

    def zeros(self, dtype):
        """A (n_degrees, n) accumulator in the layout :meth:`take` returns (so updates stay in place)."""
        import torch

        return torch.zeros(self._by_column.shape, dtype=dtype, device=self._by_column.device).T


class StratifiedMean:
    """Per-degree mean of y over the elements with z = 1, from per-(parameter, degree) samples."""

    def __init__(self, n_bins: int):
        self.n_bins = n_bins
        self._strata = []  # (population, n, sum y, sum z, sum y^2, sum z^2, sum yz), arrays of length <= n_bins

    def add(self, y_rows, population: int, z_rows=None, keep=None) -> None:
        """y_rows, z_rows: (rows, n) tensors or arrays of sampled values, one row per degree from 0;
        ``population``: elements per row; ``keep`` (rows,) 0/1 drops rows (e.g. a bypassed l = 0)."""
        y = _numpy(y_rows)
        z = np.ones_like(y) if z_rows is None else _numpy(z_rows)
        n = y.shape[1]
        sums = [y.sum(1), z.sum(1), (y * y).sum(1), (z * z).sum(1), (y * z).sum(1)]
        if keep is not None:
            sums = [s * keep for s in sums]
        self._strata.append((population, n, *sums))

    def _totals(self):
        ty, tz = np.zeros(self.n_bins), np.zeros(self.n_bins)
        for pop, n, sy, sz, *_ in self._strata:
            k = len(sy)
            ty[:k] += pop / n * sy
            tz[:k] += pop / n * sz
        return ty, tz

    def mean(self) -> np.ndarray:
        ty, tz = self._totals()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tz > 0, ty / np.where(tz > 0, tz, 1.0), np.nan)

    def stderr(self) -> np.ndarray:
        ty, tz = self._totals()
        r = self.mean()
        var = np.zeros(self.n_bins)
        for pop, n, sy, sz, syy, szz, syz in self._strata:
            if n >= pop or n < 2:
                continue  # a complete stratum has no sampling error
            k = len(sy)
            rk = np.nan_to_num(r[:k])
            # sum of d^2 and of d, d = y - r z, from the stored sums
            sdd = syy - 2 * rk * syz + rk * rk * szz
            sd = sy - rk * sz
            s2 = np.maximum(sdd - sd * sd / n, 0.0) / (n - 1)
            var[:k] += pop * pop * (1 - n / pop) / n * s2
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tz > 0, np.sqrt(var) / np.where(tz > 0, tz, 1.0), np.nan)


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        import torch

        return x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x, dtype=float)
