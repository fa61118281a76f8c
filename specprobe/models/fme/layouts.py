"""Where the degree axis l sits in each parameter of a live fme network.

Decided from the module that owns the parameter (its class and attributes such as ``modes_lat``,
``operator_type``, ``separable``), then checked against the shape: a layout is only accepted when
``shape[axis]`` equals the module's number of degrees. Verified against fme 2026.10.0 source:

========================================================  ======================================  ======
owning module (fme 2026.10.0)                              parameter shape                         l axis
========================================================  ======================================  ======
core.models.conditional_sfno.s2convolutions.SpectralConvS2  weight (G, L, Cs/G, Cs/G, 2)             1
  (NoiseConditionedSFNO filter_type "linear")               lora_A (G, L, r, Cs/G, 2), lora_B          1
                                                            (G, L, Cs/G, r, 2); pre/post_proj, bias  none
core.models.conditional_sfno.makani.SpectralConv            weight (G, Cin/G, Cout/G, L) complex64     3
  (filter_type "makani-linear"; "diagonal": (..., L, M))                                         (3)
ace.models.modulus.s2convolutions.SpectralConvS2            weight (Cin, Cout, L, [M,] 2); separable   2 (1)
  (legacy SphericalFourierNeuralOperatorNet, dense)         drops Cout
ace.models.makani.spectral_convolution.SpectralConv         weight (Cin, Cout, L, [M,] 2)              2 (1)
  (SFNO-v0.1.0; L = nlat / scale_factor)
*.SpectralAttentionS2 operator_type "l-dependant"           w.k (L, ., ., 2), wout (L, ., ., 2)        0
========================================================  ======================================  ======

Filter weights the table does not place (tensorly-factorised weights, unknown filter classes) are
an error naming every candidate, unless the user places them with ``degree_axis_overrides``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

from ...errors import CheckpointError
from ..base import SpectralParam

_COND = "fme.core.models.conditional_sfno"
# Modules that sit under a ".filter." path but hold no per-degree weight by construction.
_NOT_SPECTRAL_CLASSES = ("DiscreteContinuousConvS2", "DiscreteContinuousConv", "LocalConvS2",
                         "Conv2d", "LoRAConv2d", "Linear", "LayerNorm", "ChannelLayerNorm", "ComplexReLU")


def parse_degree_axis_overrides(items) -> dict[str, int | None]:
    """``["*.filter.weight=2", "*.factors.factor_0=none"]`` (CLI ``--degree-axis PATTERN=AXIS``) -> {glob: axis}.

    AXIS ``none`` marks matching parameters as not per-degree (e.g. the channel factors of a
    factorised filter weight).
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k): _axis_value(v, k) for k, v in items.items()}
    out = {}
    for item in items:
        pattern, sep, axis = str(item).rpartition("=")
        if not sep or not pattern:
            raise CheckpointError(f"--degree-axis {item!r}: expected PATTERN=AXIS, e.g. '*.filter.filter.weight=2'")
        out[pattern] = _axis_value(axis, pattern)
    return out


def _axis_value(v, pattern):
    if v is None or str(v).strip().lower() == "none":
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise CheckpointError(f"--degree-axis {pattern}={v}: AXIS must be an integer or 'none'") from None


def _qualname(module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def _rule(module, leaf: str, tensor):
    """(axis | None, layout, l0_bypassed) for a parameter of a known filter module, else "unknown"."""
    q = _qualname(module)
    if q == f"{_COND}.s2convolutions.SpectralConvS2":
        l0 = bool(getattr(module, "_preserve_global_mean", False))
        layouts = {"weight": "(G, L, Cs/G, Cs/G, 2) real (re, im)", "lora_A": "(G, L, r, Cs/G, 2) real (re, im)",
                   "lora_B": "(G, L, Cs/G, r, 2) real (re, im)"}
        if leaf in layouts:
            return 1, layouts[leaf] + ", fme NoiseConditionedSFNO linear dhconv", l0
        return None, "", False
    if q == f"{_COND}.makani.spectral_convolution.SpectralConv":
        if leaf != "weight":
            return None, "", False
        axis = 2 if module.separable else 3
        if module.operator_type == "diagonal":
            return axis, "(G, Cin/G, Cout/G, L, M) complex64, fme makani-linear diagonal", False
        return axis, "(G, Cin/G, Cout/G, L) complex64, fme makani-linear dhconv", False
    if q in ("fme.ace.models.modulus.s2convolutions.SpectralConvS2", "fme.ace.models.makani.spectral_convolution.SpectralConv"):
        if leaf != "weight":
            return None, "", False
        axis = 1 if module.separable else 2
        lib = "modulus SFNO (legacy ACE)" if ".modulus." in q else "makani SFNO v0.1.0"
        io = "(Cin" + ("" if module.separable else ", Cout")
        if module.operator_type == "diagonal":
            return axis, f"{io}, L, M, 2) real (re, im), {lib} diagonal (m at axis {axis + 1})", False
        return axis, f"{io}, L, 2) real (re, im), {lib} dhconv", False
    if q.endswith(".SpectralAttentionS2") and q.startswith("fme."):  # filter_type "non-linear"
        if leaf not in ("w", "wout") or module.operator_type == "diagonal":
            return None, "", False  # biases; "diagonal" weights (C, H, 2) are shared by all degrees
        if module.operator_type == "l-dependant" and tensor.ndim == 4:
            return 0, "(L, in, out, 2) real (re, im), SFNO non-linear l-dependant", False
    return "unknown"


def _expected_degrees(module):
    # Weights hold every degree (fme slices them per rank at run time); specprobe runs on one rank.
    return getattr(module, "modes_lat", None)


def spectral_params(named_modules, *, overrides: Mapping[str, int | None] | None = None, where: str = "checkpoint") -> list[SpectralParam]:
    """A :class:`SpectralParam` for every trainable parameter of ``named_modules`` (name -> module).

    ``named_modules`` is a list of (prefix, root module); parameter names are ``prefix + name``.
    """
    overrides = parse_degree_axis_overrides(overrides)
    used = {p: False for p in overrides}
    out, unplaced = [], []
    for prefix, root in named_modules:
        owners = dict(root.named_modules())
        for name, p in root.named_parameters():
            if not p.requires_grad:
                continue
            owner_name, _, leaf = name.rpartition(".")
            owner = owners.get(owner_name, root)
            # ParameterList entries (w.0) belong to the module above the list.
            if type(owner).__name__ == "ParameterList":
                owner_name2, _, leaf = owner_name.rpartition(".")
                owner = owners.get(owner_name2, root)
            full = prefix + name
            rule = _rule(owner, leaf, p)
            hits = [pat for pat in overrides if fnmatch.fnmatchcase(full, pat)]
            for pat in hits:
                used[pat] = True
            if hits:  # the first matching pattern wins
                override = overrides[hits[0]]
                if override is not None and not -p.ndim <= override < p.ndim:
                    raise CheckpointError(f"{where}: --degree-axis {override} for {full}: not an axis of shape {tuple(p.shape)}")
                axis = None if override is None else override % p.ndim
                out.append(SpectralParam(full, p, axis, "user override (--degree-axis)"))
                continue
            if rule == "unknown":
                if _looks_like_filter(owner_name, owner, p):
                    unplaced.append((full, tuple(p.shape), str(p.dtype).removeprefix("torch."), type(owner).__name__))
                out.append(SpectralParam(full, p, None, ""))
                continue
            axis, layout, l0 = rule
            if axis is not None:
                L = _expected_degrees(owner)
                if L is not None and p.shape[axis] != L:
                    raise CheckpointError(
                        f"{where}: {full} has shape {tuple(p.shape)}, expected {L} degrees on axis {axis} ({layout}); "
                        "pass --degree-axis PATTERN=AXIS to place it"
                    )
            out.append(SpectralParam(full, p, axis, layout, l0_bypassed=l0 and axis is not None))
    unused = [pat for pat, hit in used.items() if not hit]
    if unused:
        raise CheckpointError(f"{where}: --degree-axis pattern(s) {unused} match no trainable parameter")
    if unplaced:
        listing = "; ".join(f"{n} {list(s)} {d} ({cls})" for n, s, d, cls in unplaced[:12])
        more = f" and {len(unplaced) - 12} more" if len(unplaced) > 12 else ""
        raise CheckpointError(
            f"{where}: unknown spectral filter layout: cannot place the degree axis of {len(unplaced)} parameter(s): "
            f"{listing}{more}; pass --degree-axis PATTERN=AXIS (glob on these names) to place them"
        )
    return out


def _looks_like_filter(owner_name: str, owner, p) -> bool:
    """A parameter of an unrecognised module on a spectral-filter path (or of a Spectral*/Factorized* class)."""
    cls = type(owner).__name__
    if cls in _NOT_SPECTRAL_CLASSES or p.ndim < 2:
        return False
    on_filter_path = ".filter" in f".{owner_name}" or owner_name.endswith("filter")
    return on_filter_path or "Spectral" in cls or "Factorized" in cls or "Tensor" in cls


# ---------------------------------------------------------------- static: from the checkpoint dict alone

_FILTER_KEY = re.compile(r"(^|\.)filter\.")
# Under a filter path but not per-degree: spectral_ratio projections, biases, DISCO (local) convolutions.
_NOT_SPECTRAL_KEY = re.compile(r"(proj\.weight|\.bias|\.filter\.conv\.weight)$")


def expected_degrees(builder_type: str, builder_cfg: Mapping, nlat: int | None) -> int | None:
    """Number of degrees L of the filters, as fme's builders size their transforms."""
    if nlat is None:
        return None
    htf = float(builder_cfg.get("hard_thresholding_fraction", 1.0))
    if builder_type == "NoiseConditionedSFNO":
        return int(nlat * htf)
    if builder_type in ("SphericalFourierNeuralOperatorNet", "SFNO-v0.1.0"):
        default_scale = 16 if builder_type == "SFNO-v0.1.0" else 1
        return int((nlat // int(builder_cfg.get("scale_factor", default_scale))) * htf)
    return None


def _static_axis(builder_type, cfg, name, shape, dtype, L):
    """(degree_axis | None, layout, l0_bypassed) of a tensor we know, or None if we cannot place it."""
    leaf = name.rsplit(".", 1)[-1]
    complex_ = "complex" in dtype
    if builder_type == "NoiseConditionedSFNO":
        ftype = cfg.get("filter_type", "linear")
        l0 = bool(cfg.get("filter_preserves_global_mean", False)) and ftype == "linear"
        if ftype == "makani-linear" and leaf == "weight" and complex_ and len(shape) == 4:
            return 3, "(G, Cin/G, Cout/G, L) complex64, fme makani-linear dhconv", False
        if ftype == "linear" and leaf in ("weight", "lora_A", "lora_B") and shape[-1] == 2:
            if len(shape) == 5 and (L is None or shape[1] == L):
                kind = {"weight": "(G, L, Cs/G, Cs/G, 2)", "lora_A": "(G, L, r, Cs/G, 2)",
                        "lora_B": "(G, L, Cs/G, r, 2)"}[leaf]
                return 1, f"{kind} real (re, im), fme linear dhconv", l0
            if len(shape) == 5 and shape[3] == L:  # written before fme moved L to axis 1 (permuted on load)
                return 3, "(G, Cin, Cout, L, 2) real (re, im), older fme layout (fme permutes on load)", l0
            if len(shape) == 4 and shape[2] == L:  # ungrouped, even older
                return 2, "(Cs, Cs, L, 2) real (re, im), ungrouped older fme layout", l0
        return None
    nonlinear = re.search(r"filter\.filter\.(w|wout|b)(\.\d+)?$", name)
    if builder_type == "SphericalFourierNeuralOperatorNet" and cfg.get("filter_type") == "non-linear" and nonlinear:
        if nonlinear.group(1) != "b" and cfg.get("operator_type", "diagonal") == "l-dependant" and len(shape) == 4:
            return 0, "(L, in, out, 2) real (re, im), SFNO non-linear l-dependant", False
        return None, "shared by all degrees (SFNO non-linear filter)", False
    if builder_type in ("SphericalFourierNeuralOperatorNet", "SFNO-v0.1.0") and leaf == "weight":
        if not name.endswith("filter.filter.weight") or shape[-1] != 2:
            return None
        separable = bool(cfg.get("separable", False))
        op = cfg.get("operator_type", "diagonal" if builder_type == "SphericalFourierNeuralOperatorNet" else "dhconv")
        axis = 1 if separable else 2
        if L is not None and (len(shape) <= axis or shape[axis] != L):
            return None
        lib = "modulus SFNO (legacy ACE)" if builder_type == "SphericalFourierNeuralOperatorNet" else "makani SFNO v0.1.0"
        io = "(Cin" + ("" if separable else ", Cout")
        if op == "diagonal":
            return axis, f"{io}, L, M, 2) real (re, im), {lib} diagonal (m at {axis + 1})", False
        return axis, f"{io}, L, 2) real (re, im), {lib} dhconv", False
    return None


def static_layouts(state: Mapping, btype: str, bcfg: Mapping, nlat: int | None,
                   overrides: Mapping[str, int | None] | None = None) -> tuple[list[dict], list[dict]]:
    """(params, unplaced): every tensor of a checkpoint's module state with a static degree-axis guess
    from the builder type and config (no fme import, no model built; :func:`spectral_params` places
    the live parameters, which is authoritative).

    ``unplaced`` lists filter tensors (under a ``.filter.`` path, >= 3 dims) whose layout is unknown.
    """
    L = expected_degrees(btype, bcfg, nlat)
    params, unplaced = [], []
    for name, t in state.items():
        if not hasattr(t, "shape"):
            continue
        shape, dtype = list(t.shape), str(getattr(t, "dtype", "")).removeprefix("torch.")
        entry = {"name": name, "shape": shape, "dtype": dtype, "degree_axis": None, "layout": "", "l0_bypassed": False}
        placed = _static_axis(btype, bcfg, name, shape, dtype, L)
        if placed is not None:
            entry["degree_axis"], entry["layout"], entry["l0_bypassed"] = placed
        hit, override = _match_override(name, overrides)
        if hit:
            axis = None if override is None or str(override).lower() == "none" else int(override) % max(len(shape), 1)
            entry["degree_axis"], entry["layout"] = axis, "user override (--degree-axis)"
        elif placed is None and _FILTER_KEY.search(name) and len(shape) >= 2 and not _NOT_SPECTRAL_KEY.search(name):
            entry["layout"] = "unknown"
            unplaced.append(entry)
        params.append(entry)
    return params, unplaced


def _match_override(name, overrides):
    for pattern, axis in (overrides or {}).items():
        if fnmatch.fnmatchcase(name, pattern):
            return True, axis
    return False, None
