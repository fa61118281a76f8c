"""Running sums over samples: per-element gradient moments, per-degree curves, percentiles."""

from __future__ import annotations

import numpy as np

from ..spectral import bin_by_degree, degree_slices


class GradientMoments:
    """Sum and sum of squares of per-sample gradients of one parameter, element by element.

    The mean gradient is what an optimizer sees for a batch of all probed samples (the loss is a
    mean over samples); mean^2 / variance per element is the gradient signal-to-noise ratio.
    """

    def __init__(self, like, degree_axis: int | None):
        import torch

        self.degree_axis = degree_axis
        real = torch.view_as_real(like) if like.is_complex() else like
        # float64: sums of squares of many tiny float32 gradients lose digits in float32.
        self.sum = torch.zeros(real.shape, dtype=torch.float64, device=like.device)
        self.sum_sq = torch.zeros_like(self.sum)
        self.count = 0
        self.nonfinite = 0
        self._complex = like.is_complex()

    def add(self, grad) -> None:
        import torch

        g = torch.view_as_real(grad) if self._complex else grad
        g = g.detach().to(torch.float64)
        bad = ~torch.isfinite(g)
        if bad.any():
            self.nonfinite += int(bad.sum())
        self.sum += g
        self.sum_sq += g * g
        self.count += 1

    def _degree_view(self, t):
        # A complex parameter's (re, im) pair became a trailing axis; the degree axis is unchanged
        # for non-negative axes and shifts by one for negative ones.
        axis = self.degree_axis
        if self._complex and axis < 0:
            axis -= 1
        return axis

    # The accessors below are the interface every statistic uses; the storage behind them (dtype,
    # compensated or Welford sums, which moments are kept) is free to change.
    def mean(self):
        """Per-element mean of the per-sample gradients (float64, the parameter's real shape)."""
        return self.sum / max(self.count, 1)

    def mean_square(self):
        """Per-element mean of the squared per-sample gradients, E[g^2] (float64)."""
        return self.sum_sq / max(self.count, 1)

    def degree_axis_of_real_view(self) -> int:
        """The degree axis in the real view (a complex parameter's (re, im) pair is the last axis)."""
        return self._degree_view(self.sum)

    def mean_grad_by_degree(self) -> np.ndarray:
        mean = self.sum / max(self.count, 1)
        return bin_by_degree(mean, self._degree_view(mean)).cpu().numpy()

    def norm_of_mean(self) -> float:
        return float((self.sum / max(self.count, 1)).norm())

    def gsnr_sums_by_degree(self):
        """Per degree: (sum over elements of mean^2/var, number of elements with var > 0)."""
        import torch

        n = self.count
        if n < 2:
            return None
        mean = self.sum / n
        var = (self.sum_sq - n * mean * mean).clamp_min(0) / (n - 1)
        ok = var > 0
        gsnr = torch.where(ok, mean * mean / torch.where(ok, var, 1.0), 0.0)
        axis = self._degree_view(gsnr)
        return (degree_slices(gsnr, axis).sum(dim=1).cpu().numpy(),
                degree_slices(ok.double(), axis).sum(dim=1).cpu().numpy())


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
