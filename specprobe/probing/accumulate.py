"""Running sums over samples: per-element gradient moments, per-degree curves, percentiles."""

from __future__ import annotations

import numpy as np

from ..spectral import bin_by_degree, degree_slices


class GradientMoments:
    """Running mean (and, where a statistic needs it, spread) of one parameter's per-sample gradients.

    The mean gradient is what an optimizer sees for a batch of all probed samples (the loss is a
    mean over samples); mean^2 / variance per element is the gradient signal-to-noise ratio.

    Storage: Welford's running mean and M2 (sum of squared deviations from the running mean) in the
    gradient's own precision (float32 for float32 models, float64 for float64 ones): 8 bytes per
    float32 element with both moments, 4 with the mean alone, against 16 for float64 sum and sum of
    squares. Welford's M2 never subtracts two large sums, so float32 keeps the digits that a float32
    sum of squares lost (tests/test_accumulate.py measures the error against float64 sums).
    ``second_moment`` defaults to per-degree parameters only; the engine asks for it on every
    parameter a variant differentiates, because the optimizer view reports the steady-state Adam step
    of the non-spectral groups too.

    Distributed use: :meth:`reducible_state` gives plain tensors whose element-wise sum over
    processes (e.g. ``torch.distributed.all_reduce``) is the state of all samples together;
    :meth:`load_reduced` turns that sum back into a running state.
    """

    def __init__(self, like, degree_axis: int | None, *, second_moment: bool | None = None):
        import torch

        self.degree_axis = degree_axis
        self._complex = like.is_complex()
        real = torch.view_as_real(like) if self._complex else like
        dtype = torch.promote_types(real.dtype, torch.float32)
        self._mean = torch.zeros(real.shape, dtype=dtype, device=like.device)
        keep = degree_axis is not None if second_moment is None else second_moment
        self._m2 = torch.zeros_like(self._mean) if keep else None
        self.count = 0
        self.nonfinite = 0

    @property
    def has_second_moment(self) -> bool:
        return self._m2 is not None

    def add(self, grad) -> None:
        import torch

        g = torch.view_as_real(grad) if self._complex else grad
        g = g.detach().to(self._mean.dtype)
        if not bool(torch.isfinite(g.sum())):  # one reduction; count element by element only when needed
            self.nonfinite += int((~torch.isfinite(g)).sum())
        self.count += 1
        delta = g - self._mean
        self._mean.add_(delta, alpha=1.0 / self.count)
        if self._m2 is not None:
            self._m2.addcmul_(delta, g - self._mean)

    def _degree_view(self, t):
        # A complex parameter's (re, im) pair became a trailing axis; the degree axis is unchanged
        # for non-negative axes and shifts by one for negative ones.
        axis = self.degree_axis
        if self._complex and axis < 0:
            axis -= 1
        return axis

    # The accessors below are the interface every statistic uses; the storage behind them is free
    # to change. Each returns float64, computed on demand.
    def mean(self):
        """Per-element mean of the per-sample gradients (float64, the parameter's real shape)."""
        import torch

        return self._mean.to(torch.float64)

    def mean_square(self):
        """Per-element mean of the squared per-sample gradients, E[g^2] (float64)."""
        import torch

        if self._m2 is None:
            raise ValueError("mean_square: this accumulator keeps the mean only (second_moment=False)")
        mean = self._mean.to(torch.float64)
        return self._m2.to(torch.float64) / max(self.count, 1) + mean * mean

    def degree_axis_of_real_view(self) -> int:
        """The degree axis in the real view (a complex parameter's (re, im) pair is the last axis)."""
        return self._degree_view(self._mean)

    def mean_grad_by_degree(self) -> np.ndarray:
        mean = self.mean()
        return bin_by_degree(mean, self._degree_view(mean)).cpu().numpy()

    def norm_of_mean(self) -> float:
        return float(self.mean().norm())

    def gsnr_sums_by_degree(self):
        """Per degree: (sum over elements of mean^2/var, number of elements with var > 0)."""
        import torch

        n = self.count
        if n < 2 or self._m2 is None:
            return None
        mean = self.mean()
        var = self._m2.to(torch.float64).clamp_min(0) / (n - 1)
        ok = var > 0
        gsnr = torch.where(ok, mean * mean / torch.where(ok, var, 1.0), 0.0)
        axis = self._degree_view(gsnr)
        return (degree_slices(gsnr, axis).sum(dim=1).cpu().numpy(),
                degree_slices(ok.double(), axis).sum(dim=1).cpu().numpy())

    # ------------------------------------------------------------------ distributed reduction
    def reducible_state(self) -> dict:
        """Plain float64 tensors {count, nonfinite, sum, sum_sq?}: summing them over processes
        element-wise gives the state of the union of their samples (feed it to :meth:`load_reduced`)."""
        import torch

        mean = self._mean.to(torch.float64)
        state = {"count": torch.tensor(float(self.count), dtype=torch.float64, device=mean.device),
                 "nonfinite": torch.tensor(float(self.nonfinite), dtype=torch.float64, device=mean.device),
                 "sum": mean * self.count}
        if self._m2 is not None:
            state["sum_sq"] = self._m2.to(torch.float64) + self.count * mean * mean
        return state

    def load_reduced(self, state: dict) -> None:
        """Replace this accumulator's state by a (summed) :meth:`reducible_state`."""
        import torch

        n = int(round(float(state["count"])))
        self.count, self.nonfinite = n, int(round(float(state["nonfinite"])))
        mean = state["sum"].to(torch.float64) / max(n, 1)
        self._mean.copy_(mean)
        if self._m2 is not None:
            # float64 here: sum_sq - n*mean^2 cancels, and this runs once, not per sample.
            self._m2.copy_((state["sum_sq"].to(torch.float64) - n * mean * mean).clamp_min(0))


class SampleCollector:
    """Keeps per-sample rows (small: one value per channel and degree) for means and percentiles."""

    def __init__(self):
        self.rows = []

    def add(self, t) -> None:
        self.rows.append(t.detach().double().cpu().numpy())

    def stack(self) -> np.ndarray:
        return np.concatenate(self.rows, axis=0)


def percentile_summary(samples: np.ndarray) -> dict:
    """samples (N, L) -> {"mean", "p10", "p90"} lists over axis 0."""
    return {
        "mean": samples.mean(axis=0).tolist(),
        "p10": np.percentile(samples, 10, axis=0).tolist(),
        "p90": np.percentile(samples, 90, axis=0).tolist(),
    }


def rss(curves: list[np.ndarray]) -> np.ndarray:
    """Root-sum-square of curves of equal length; a NaN (non-finite gradient) stays NaN."""
    if not curves:
        return np.array([])
    return np.sqrt(np.sum(np.stack(curves) ** 2, axis=0))
