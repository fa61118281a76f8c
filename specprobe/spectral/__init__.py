"""specprobe.spectral: the pure math (no I/O): the loss SHT, energy score, whitening, degree binning,
spectra and curve statistics, matching fme 2026.10.0 to float precision.

Importing this package does not import torch; the functions do, when called.
"""

from .binning import bin_by_degree, degree_slices
from .crps import crps, ensemble_loss
from .energy_score import (
    EnergyScoreLossTerms,
    energy_score,
    energy_score_loss,
    energy_score_loss_terms,
    energy_score_terms,
    loss_scaling,
    mode_weights,
    weighted_loss_terms,
)
from .scores import SCORE_TERMS, band_sums, degree_scores
from .predictability import (
    DEFAULT_MIN_CHANGE,
    DEFAULT_R2_THRESHOLD,
    Predictability,
    noise_mask,
    predictability_from_fields,
    predictability_sums,
    weight_share,
)
from .sht import LOSS_GRID, SHTConvention, real_sht, to_spectral
from .spectra import POWER_CONVENTIONS, degree_power
from .stats import Band, curve_stats, default_bands, loglog_slope, parse_bands, spearman_rho
from .whitening import (
    DEFAULT_EPS_FRAC,
    DEFAULT_GAMMA,
    SpectralWhitening,
    WhiteningConfig,
    as_whitening,
    degree_rms_amplitude,
    parse_variants,
    whitening_factor,
)

__all__ = [
    "Band", "DEFAULT_EPS_FRAC", "DEFAULT_GAMMA", "DEFAULT_MIN_CHANGE", "DEFAULT_R2_THRESHOLD", "Predictability",
    "noise_mask", "predictability_from_fields", "predictability_sums", "weight_share", "EnergyScoreLossTerms", "LOSS_GRID",
    "POWER_CONVENTIONS", "SCORE_TERMS", "SHTConvention", "SpectralWhitening", "WhiteningConfig", "as_whitening", "parse_variants",
    "band_sums", "bin_by_degree", "crps", "curve_stats", "default_bands", "degree_power", "degree_rms_amplitude",
    "degree_scores", "degree_slices", "energy_score", "energy_score_loss", "energy_score_loss_terms",
    "energy_score_terms", "ensemble_loss", "loglog_slope", "loss_scaling", "mode_weights",
    "parse_bands", "real_sht", "spearman_rho", "to_spectral", "weighted_loss_terms", "whitening_factor",
]
