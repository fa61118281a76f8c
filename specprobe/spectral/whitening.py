"""Per-sample spectral whitening of the energy score (fme 2026.10.0 ``SpectralWhitening``).

For a target's coefficients y_hat (B, 1, C, L, M), per sample b, channel c and degree l:

    amp_l   = sqrt( sum_m w_lm |y_lm|^2 / sum_m w_lm )          w_lm = (1 if m = 0 else 2) * [m <= l]
    f_l     = ( 1 / max(amp_l, eps_frac * mean_l amp_l) ) ** gamma
    alpha   = sum_lm w_lm |y_lm|  /  sum_lm w_lm f_l |y_lm|        (keeps the loss's magnitude)
    factor  = alpha * f_l                                         shape (B, C, L, 1), detached

A white target gives factor 1; scaling the target by a constant leaves it unchanged; the floor caps
one degree's boost over a mean-amplitude degree at (1 / eps_frac) ** gamma.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch

DEFAULT_GAMMA = 0.5  # fme's default exponent: the stable knee of the upstream gamma sweep
DEFAULT_EPS_FRAC = 0.02
KINDS = ("none", "per_sample")


class UnknownWhiteningKind(ValueError, NotImplementedError):
    """An unknown ``kind``: a ValueError for specprobe, and the NotImplementedError fme raises."""


def _check_gamma_eps(gamma, eps_frac):
    if not isinstance(gamma, (int, float)) or not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma (exponent): expected a number in (0, 1], got {gamma!r}")
    if not isinstance(eps_frac, (int, float)) or not eps_frac > 0.0 or eps_frac != eps_frac:
        raise ValueError(f"eps_frac: expected a number > 0, got {eps_frac!r}")


def _fmt(x: float) -> str:
    return f"{float(x):g}"


@dataclass(frozen=True)
class SpectralWhitening:
    """The runtime whitening operator: ``factor(target_hat)`` -> (B, C, L, 1).

    Attributes:
        gamma: the exponent, in (0, 1] (default 0.5, fme's).
        eps_frac: the amplitude floor as a fraction of the mean degree amplitude, > 0 (default 0.02).

    Raises:
        ValueError: on construction, ``gamma`` or ``eps_frac`` out of range.
    """

    gamma: float = DEFAULT_GAMMA
    eps_frac: float = DEFAULT_EPS_FRAC

    def __post_init__(self):
        _check_gamma_eps(self.gamma, self.eps_frac)

    @property
    def name(self) -> str:
        """The variant name used in every output: ``per_sample(gamma=G,eps_frac=E)``."""
        return f"per_sample(gamma={_fmt(self.gamma)},eps_frac={_fmt(self.eps_frac)})"

    def factor(self, target_hat: torch.Tensor) -> torch.Tensor:
        """:func:`whitening_factor` with this operator's gamma and eps_frac.

        Args:
            target_hat: complex SHT coefficients of the target, shape (B, 1, C, L, M).

        Returns:
            The detached factor, shape (B, C, L, 1).

        Raises:
            ValueError: ``target_hat`` is not complex of shape (B, 1, C, L, M).
        """
        return whitening_factor(target_hat, gamma=self.gamma, eps_frac=self.eps_frac)


def valid_mode_weights(n_l: int, n_m: int, *, device: torch.device | str | None = None,
                       dtype: torch.dtype | None = None) -> torch.Tensor:
    """w_lm = redundancy (1 for m = 0, 2 for m > 0) times validity (m <= l), shape (L, M).

    Args:
        n_l: number of degrees L.
        n_m: number of orders M.
        device: the tensor's device; None: torch's default device.
        dtype: the tensor's dtype; None: float32.

    Returns:
        A tensor of shape (L, M); 0 where m > l.
    """
    import torch

    l_idx = torch.arange(n_l, device=device).unsqueeze(-1)
    m_idx = torch.arange(n_m, device=device).unsqueeze(0)
    w = torch.where(m_idx == 0, 1.0, 2.0) * (m_idx <= l_idx)
    return w.to(dtype or torch.float32)


def degree_rms_amplitude(target_hat: torch.Tensor) -> torch.Tensor:
    """Per-mode RMS amplitude of each degree over valid orders: (B, 1, C, L, M) -> (B, C, L).

    amp_l = sqrt( sum_m w_lm |y_lm|^2 / sum_m w_lm ) with w_lm from :func:`valid_mode_weights`.

    Args:
        target_hat: complex SHT coefficients of the target, shape (B, 1, C, L, M).

    Returns:
        A detached real tensor of shape (B, C, L).

    Raises:
        ValueError: ``target_hat`` is not a complex tensor of shape (B, 1, C, L, M).
    """
    import torch

    if not isinstance(target_hat, torch.Tensor) or not target_hat.is_complex():
        raise ValueError("target_hat: expected complex spectral coefficients (B, 1, C, L, M)")
    if target_hat.ndim != 5 or target_hat.shape[1] != 1:
        raise ValueError(f"target_hat: expected shape (B, 1, C, L, M), got {tuple(target_hat.shape)}")
    amp = target_hat.detach()[:, 0].abs()
    w = valid_mode_weights(*amp.shape[-2:], device=amp.device, dtype=amp.dtype)
    tiny = torch.finfo(amp.dtype).tiny
    return torch.sqrt((amp**2 * w).sum(-1) / w.sum(-1).clamp_min(tiny))


def whitening_factor(target_hat: torch.Tensor, *, gamma: float = DEFAULT_GAMMA,
                     eps_frac: float = DEFAULT_EPS_FRAC) -> torch.Tensor:
    """The detached per-(sample, channel, degree) factor (B, C, L, 1) for target_hat (B, 1, C, L, M).

    factor = alpha * f_l, as in the module docstring: f_l = (1 / max(amp_l, eps_frac * mean_l amp_l)) ** gamma,
    alpha keeps the loss's magnitude.

    Args:
        target_hat: complex SHT coefficients of the target, shape (B, 1, C, L, M).
        gamma: the exponent, in (0, 1] (default 0.5).
        eps_frac: the amplitude floor as a fraction of the mean degree amplitude, > 0 (default 0.02).

    Returns:
        A detached real tensor of shape (B, C, L, 1).

    Raises:
        ValueError: ``gamma`` or ``eps_frac`` out of range, or ``target_hat`` not complex (B, 1, C, L, M).
    """
    import torch

    _check_gamma_eps(gamma, eps_frac)
    amp_l = degree_rms_amplitude(target_hat)  # (B, C, L)
    amp = target_hat.detach()[:, 0].abs()
    w = valid_mode_weights(*amp.shape[-2:], device=amp.device, dtype=amp.dtype)
    tiny = torch.finfo(amp.dtype).tiny
    f = 1.0 / torch.clamp(amp_l, min=eps_frac * amp_l.mean(dim=-1, keepdim=True))
    if gamma != 1.0:
        f = f**gamma
    f = f.unsqueeze(-1)
    alpha = (w * amp).sum(dim=(-2, -1), keepdim=True) / ((w * f * amp).sum(dim=(-2, -1), keepdim=True) + tiny)
    return alpha * f


@dataclass
class WhiteningConfig:
    """fme's ``SpectralWhiteningConfig``: validate in ``__post_init__``, ``build()`` the operator.

    kind "none" (default) disables whitening; "per_sample" enables it, with unset exponent -> 0.5
    and unset eps_frac -> 0.02. Setting a knob with kind "none" is an error, as in fme.

    Attributes:
        kind: ``"none"`` or ``"per_sample"``.
        exponent: gamma, in (0, 1]; None with kind "none" (filled in with 0.5 for "per_sample").
        eps_frac: the amplitude floor, > 0; None with kind "none" (filled in with 0.02 for "per_sample").

    Raises:
        UnknownWhiteningKind: on construction, an unknown ``kind`` (a ValueError).
        ValueError: on construction, a knob set with kind "none", or a knob out of range.
    """

    kind: str = "none"
    exponent: float | None = None
    eps_frac: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UnknownWhiteningKind(f"kind: expected one of {KINDS}, got {self.kind!r}")
        if self.kind == "none":
            if self.exponent is not None or self.eps_frac is not None:
                raise ValueError("exponent and eps_frac require kind='per_sample'; got kind='none'")
            return
        if self.exponent is None:
            self.exponent = DEFAULT_GAMMA
        if self.eps_frac is None:
            self.eps_frac = DEFAULT_EPS_FRAC
        _check_gamma_eps(self.exponent, self.eps_frac)

    @property
    def gamma(self) -> float | None:
        """The exponent (fme's ``exponent``); None for kind "none"."""
        return self.exponent

    @property
    def name(self) -> str:
        """``baseline`` or ``per_sample(gamma=G,eps_frac=E)``: the variant name used in every output."""
        return "baseline" if self.kind == "none" else self.build().name

    def build(self) -> SpectralWhitening | None:
        """The runtime operator: a :class:`SpectralWhitening`, or None for kind "none"."""
        if self.kind == "none":
            return None
        return SpectralWhitening(gamma=float(self.exponent), eps_frac=float(self.eps_frac))

    def to_dict(self) -> dict:
        """fme's dict form ``{"kind", "exponent", "eps_frac"}`` (what :meth:`from_fme` reads back)."""
        return {"kind": self.kind, "exponent": self.exponent, "eps_frac": self.eps_frac}

    @classmethod
    def from_fme(cls, value: Mapping[str, Any] | WhiteningConfig | None) -> WhiteningConfig:
        """fme's YAML form ``{kind: per_sample, exponent: 0.5, eps_frac: 0.02}`` (or None).

        Args:
            value: a mapping with any of the keys kind, exponent, eps_frac; a :class:`WhiteningConfig`
                (returned as it is); or None (no whitening).

        Returns:
            The config.

        Raises:
            ValueError: ``value`` is not a mapping, has unknown keys, or holds invalid settings
                (an unknown kind raises :class:`UnknownWhiteningKind`).
        """
        if value is None:
            return cls()
        if isinstance(value, WhiteningConfig):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"energy_score_whitening: expected a mapping, got {type(value).__name__}")
        unknown = set(value) - {"kind", "exponent", "eps_frac"}
        if unknown:
            raise ValueError(f"energy_score_whitening: unknown keys {sorted(unknown)}; expected kind, exponent, eps_frac")
        return cls(**dict(value))

    @classmethod
    def from_pr1303(cls, spectral_whitening: str = "none",
                    whitening_eps_frac: float | None = None) -> WhiteningConfig:
        """ai2cm/ace PR #1303 as first proposed: no exponent, so per_sample means gamma = 1.

        Args:
            spectral_whitening: ``"none"`` (default) or ``"per_sample"``.
            whitening_eps_frac: the amplitude floor; None: the default 0.02. Ignored with ``"none"``.

        Returns:
            The config: kind "none", or "per_sample" with exponent 1.0.

        Raises:
            UnknownWhiteningKind: ``spectral_whitening`` is neither "none" nor "per_sample" (a ValueError).
            ValueError: ``whitening_eps_frac`` is not > 0.
        """
        if spectral_whitening not in KINDS:
            raise UnknownWhiteningKind(f"spectral_whitening: expected one of {KINDS}, got {spectral_whitening!r}")
        if spectral_whitening == "none":
            return cls()
        return cls("per_sample", exponent=1.0, eps_frac=whitening_eps_frac)

    @classmethod
    def parse(cls, spec: str) -> WhiteningConfig:
        """Command-line form: ``none``/``baseline``, ``per_sample``, ``per_sample:gamma=0.8,eps_frac=0.05``.

        The variant names themselves (``per_sample(gamma=0.5,eps_frac=0.02)``) parse too. ``exponent=`` is
        accepted for ``gamma=``; unset knobs take their defaults.

        Args:
            spec: the text (surrounding whitespace ignored).

        Returns:
            The config.

        Raises:
            ValueError: ``spec`` does not parse, a knob is unknown or not a number, or a value is out of range.
        """
        text = spec.strip()
        if text in ("none", "baseline"):
            return cls()
        m = re.fullmatch(r"per_sample(?::(.*)|\((.*)\))?", text)
        if not m:
            raise ValueError(
                f"whitening: cannot parse {spec!r}; expected none, per_sample or per_sample:gamma=G,eps_frac=E"
            )
        body = m.group(1) if m.group(1) is not None else (m.group(2) or "")
        knobs: dict[str, float] = {}
        for item in filter(None, (p.strip() for p in body.split(","))):
            key, sep, val = item.partition("=")
            key = {"gamma": "exponent", "exponent": "exponent", "eps_frac": "eps_frac"}.get(key.strip())
            if not sep or key is None:
                raise ValueError(f"whitening: cannot parse {item!r} in {spec!r}; expected gamma=G or eps_frac=E")
            try:
                knobs[key] = float(val)
            except ValueError:
                raise ValueError(f"whitening: {item!r} in {spec!r} is not a number") from None
        return cls("per_sample", **knobs)


def as_whitening(value: Any) -> SpectralWhitening | None:
    """Accept an operator, a config, fme's dict form, a command-line string, or None.

    Args:
        value: None; a :class:`SpectralWhitening`; a :class:`WhiteningConfig`; a command-line string
            (:meth:`WhiteningConfig.parse`); fme's mapping form (:meth:`WhiteningConfig.from_fme`); or any
            object with a ``factor`` method (e.g. fme's own SpectralWhitening), returned as it is.

    Returns:
        The operator, or None when ``value`` means no whitening (None, kind "none", ``"baseline"``).

    Raises:
        ValueError: ``value`` is of none of these kinds, or does not parse / validate.
    """
    if value is None or isinstance(value, SpectralWhitening):
        return value
    if isinstance(value, WhiteningConfig):
        return value.build()
    if isinstance(value, str):
        return WhiteningConfig.parse(value).build()
    if isinstance(value, Mapping):
        return WhiteningConfig.from_fme(value).build()
    if hasattr(value, "factor"):  # duck-typed, e.g. fme's own SpectralWhitening
        return value
    raise ValueError(f"whitening: expected None, a WhiteningConfig, a dict or a string, got {type(value).__name__}")


def parse_variants(variants: Iterable[str | dict | WhiteningConfig]) -> list[WhiteningConfig]:
    """The loss variants of a command, parsed once: the baseline first, then each whitening setting once.

    Settings are kept in the order given; one whose variant name (:attr:`WhiteningConfig.name`) is
    already in the list (including ``"none"`` / the baseline) is dropped.

    Args:
        variants: strings (``"per_sample"``, ``"per_sample:gamma=0.8,eps_frac=0.05"``), fme config dicts
            (``{"kind": "per_sample", "exponent": 0.5}``) or :class:`WhiteningConfig` objects.

    Returns:
        ``[WhiteningConfig()] + [each distinct setting]``; already-parsed configs pass through unchanged.

    Raises:
        ValueError: an item is of another type, or does not parse / validate.
    """
    out = [WhiteningConfig()]
    for v in variants:
        if isinstance(v, str):
            cfg = WhiteningConfig.parse(v)
        elif isinstance(v, dict):
            cfg = WhiteningConfig.from_fme(v)
        elif isinstance(v, WhiteningConfig):
            cfg = v
        else:
            raise ValueError(f"variants: expected strings, dicts or WhiteningConfig, got {type(v).__name__}")
        if cfg.name not in [c.name for c in out]:
            out.append(cfg)
    return out
