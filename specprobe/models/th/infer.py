"""The constructor arguments of a torch-harmonics 0.8.0 ``SphericalFourierNeuralOperator``, read from its
state dict, with ``--grid`` / ``--scale-factor`` for what the weights cannot tell.

What the weights tell (torch_harmonics/examples/models/sfno.py and _layers.py, 0.8.0):

    encoder.0.weight (embed_dim, in_chans, 1, 1)   decoder.0.weight (out_chans, embed_dim, 1, 1)
    encoder.0.bias present                      -> bias=True (the encoder, decoder and filters share it)
    blocks.{i}.global_conv.weight (embed, embed, L) complex: num_layers, embed_dim, L = modes_lat
    blocks.{i}.mlp.fwd.0.weight (hidden, ...)   -> use_mlp, mlp_ratio = hidden / embed_dim
    blocks.{i}.mlp.fwd.3.weight                 -> dropout layers between (drop_rate > 0, value unknown)
    blocks.{i}.norm.weight (embed,) / (h, w)    -> instance_norm / layer_norm (on the block's output grid)
    pos_embed.position_embeddings (1, embed, h, w or 1): "learnable lat" when w = 1; otherwise its values
        are compared with torch-harmonics' own sequence and spectral embeddings, else "learnable latlon".
        The SFNO adds it to the full-grid encoder output, so it runs only at scale_factor 1, h = nlat.

What they cannot tell: the data grid (img_size, grid type) and the scale factor, except through a
layer norm or position embedding; L = int(min(h, w // 2) * hard_thresholding_fraction) with
h = (nlat - 1) // scale_factor + 1, w = nlon // scale_factor narrows the scale factor when the
threshold fraction is 1. Activation (gelu), drop_path_rate (0), residual_prediction (False) and, without
a spectral position embedding, grid_internal (legendre-gauss) leave no trace: the torch-harmonics
defaults are assumed, and said so. The caller verifies the result with ``load_state_dict(strict=True)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ...errors import CheckpointError, SpecprobeError

GRID_FLAG = "--grid NLATxNLON[:equiangular|legendre-gauss]"
SCALE_FLAG = "--scale-factor"
_GRID_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*(?::\s*([a-z-]+)\s*)?$")
_GRID_TYPES = ("equiangular", "legendre-gauss", "lobatto")
_DEFAULT = "the torch-harmonics default (no trace in the weights)"


@dataclass
class Inference:
    """Constructor arguments and, for each, how it was obtained."""

    args: dict
    inferred: dict = field(default_factory=dict)  # name -> what in the weights says so
    given: dict = field(default_factory=dict)  # name -> the option that supplied it
    assumed: dict = field(default_factory=dict)  # name -> why (no trace in the weights)


def parse_grid(value) -> dict | None:
    """``"NLATxNLON[:type]"`` (or a dict / (nlat, nlon) pair) -> {nlat, nlon, type or None}; None stays None."""
    if value is None:
        return None
    if isinstance(value, dict):
        nlat, nlon, kind = value.get("nlat"), value.get("nlon"), value.get("type")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        (nlat, nlon), kind = value, None
    else:
        m = _GRID_RE.match(str(value))
        if not m:
            raise SpecprobeError(f"--grid {value!r}: expected NLATxNLON or NLATxNLON:TYPE, e.g. 64x128:equiangular")
        nlat, nlon, kind = int(m.group(1)), int(m.group(2)), m.group(3)
    if not all(isinstance(v, int) and not isinstance(v, bool) and 2 <= v <= 1_000_000 for v in (nlat, nlon)):
        raise SpecprobeError(f"--grid {value!r}: nlat and nlon must be integers from 2 to 1,000,000")
    if kind is not None and kind not in _GRID_TYPES:
        raise SpecprobeError(f"--grid {value!r}: grid type must be one of {', '.join(_GRID_TYPES)}")
    return {"nlat": nlat, "nlon": nlon, "type": kind}


def check_scale_factor(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecprobeError(f"--scale-factor {value!r}: expected an integer >= 1")
    return value


def internal_grid(nlat: int, nlon: int, scale_factor: int) -> tuple[int, int]:
    """(h, w) of the SFNO's internal grid, as its constructor computes them."""
    return (nlat - 1) // scale_factor + 1, nlon // scale_factor


def full_modes(nlat: int, nlon: int, scale_factor: int) -> int:
    """modes_lat at hard_thresholding_fraction 1."""
    h, w = internal_grid(nlat, nlon, scale_factor)
    return min(h, (w // 2 + 1) - 1)


def _fraction(count: int, total: int) -> float:
    """The float f with int(total * f) == count (what hard_thresholding_fraction / mlp_ratio must be)."""
    f = count / total
    while int(total * f) < count:
        f = math.nextafter(f, math.inf)
    return f


def _shape(state, key):
    t = state.get(key)
    return None if t is None else tuple(t.shape)


def infer_sfno_args(state: dict, *, path, grid=None, scale_factor=None, sidecar_names: str = "") -> Inference:
    """Constructor arguments for ``state`` (keys as the SFNO names them); one-line errors otherwise."""
    fail = lambda msg: CheckpointError(f"{path}: {msg}")  # noqa: E731
    grid, scale_factor = parse_grid(grid), check_scale_factor(scale_factor)
    inf = Inference(args={})
    a = inf.args

    blocks = sorted(int(m.group(1)) for k in state if (m := re.match(r"^blocks\.(\d+)\.global_conv\.weight$", k)))
    if not blocks or blocks != list(range(len(blocks))):
        raise fail(f"SFNO filters blocks.{{i}}.global_conv.weight are not numbered 0..n-1 (found {blocks[:6]})")
    filters = [state[f"blocks.{i}.global_conv.weight"] for i in blocks]
    w0 = filters[0]
    if w0.ndim != 3 or not w0.is_complex() or w0.shape[0] != w0.shape[1]:
        raise fail(f"blocks.0.global_conv.weight {tuple(w0.shape)} {w0.dtype}: expected (embed, embed, L) complex, "
                   "the SFNO's driscoll-healy filter")
    if any(f.shape != w0.shape for f in filters):
        raise fail(f"the SFNO filters differ in shape ({sorted({tuple(f.shape) for f in filters})}); expected one shape")
    embed, L = int(w0.shape[0]), int(w0.shape[2])
    a.update(num_layers=len(blocks), embed_dim=embed)
    inf.inferred.update(num_layers=f"{len(blocks)} blocks.{{i}}.global_conv.weight",
                        embed_dim=f"global_conv.weight {tuple(w0.shape)}")

    enc, dec = _shape(state, "encoder.0.weight"), _shape(state, "decoder.0.weight")
    if enc is None or dec is None or len(enc) != 4 or len(dec) != 4 or enc[0] != embed or dec[1] != embed:
        raise fail(f"encoder.0.weight {enc}, decoder.0.weight {dec}: not the 1x1 encoder/decoder of a torch-harmonics "
                   f"0.8.0 SFNO with embed_dim {embed}; give the constructor arguments as JSON in {sidecar_names}")
    a.update(in_chans=int(enc[1]), out_chans=int(dec[0]), bias="encoder.0.bias" in state)
    inf.inferred.update(in_chans=f"encoder.0.weight {enc}", out_chans=f"decoder.0.weight {dec}",
                        bias=f"encoder.0.bias {'present' if a['bias'] else 'absent'}")

    hidden = _shape(state, "blocks.0.mlp.fwd.0.weight")
    a["use_mlp"] = hidden is not None
    inf.inferred["use_mlp"] = "blocks.0.mlp " + ("present" if hidden else "absent")
    missing = []
    if hidden:
        a["mlp_ratio"] = _fraction(int(hidden[0]), embed)
        inf.inferred["mlp_ratio"] = f"mlp hidden width {hidden[0]} / embed_dim {embed}"
        if "blocks.0.mlp.fwd.3.weight" in state:
            missing.append("drop_rate (the MLPs hold dropout layers, whose rate leaves no trace; only the JSON "
                           "constructor arguments can give it)")
    a["drop_rate"] = 0.0  # one rate for the MLPs' dropout layers and the (parameter-free) input dropout
    if hidden:
        inf.inferred["drop_rate"] = "no dropout layers in the MLPs"
    else:
        inf.assumed["drop_rate"] = _DEFAULT

    norm = _shape(state, "blocks.0.norm.weight")
    a["normalization_layer"] = "none" if norm is None else "instance_norm" if len(norm) == 1 else "layer_norm"
    inf.inferred["normalization_layer"] = f"blocks.0.norm.weight {norm}" if norm else "no blocks.{i}.norm weights"

    # grid and scale factor: every trace in the weights, then the options; conflicts are errors
    nlat = nlon = sf = None
    how = {}

    def pin(name, value, source):
        nonlocal nlat, nlon, sf
        current = {"nlat": nlat, "nlon": nlon, "scale_factor": sf}[name]
        if current is not None and current != value:
            raise fail(f"{name} {value} from {source} contradicts {current} from {how[name]}")
        if name == "nlat":
            nlat = value
        elif name == "nlon":
            nlon = value
        else:
            sf = value
        how.setdefault(name, source)

    pos = state.get("pos_embed.position_embeddings")
    if pos is not None:
        if pos.ndim != 4 or pos.shape[:2] != (1, embed):
            raise fail(f"pos_embed.position_embeddings {tuple(pos.shape)}: expected (1, {embed}, h, w or 1)")
        kind, grid_internal = _pos_embed_kind(pos)
        a["pos_embed"] = kind
        inf.inferred["pos_embed"] = f"pos_embed.position_embeddings {tuple(pos.shape)}" + (
            "" if kind.startswith("learnable") else f" equals torch-harmonics' {kind} embedding")
        if grid_internal:
            a["grid_internal"] = grid_internal
            inf.inferred["grid_internal"] = f"the spectral position embedding's values ({grid_internal})"
        source = "the position embedding (it is added on the full grid: scale factor 1)"
        pin("scale_factor", 1, source)
        pin("nlat", int(pos.shape[2]), source)
        if pos.shape[3] > 1:
            pin("nlon", int(pos.shape[3]), source)
    last = _shape(state, f"blocks.{len(blocks) - 1}.norm.weight")
    if last is not None and len(last) == 2:
        pin("nlat", last[0], f"the last block's layer norm {last}")
        pin("nlon", last[1], f"the last block's layer norm {last}")
    if grid is not None:
        pin("nlat", grid["nlat"], "--grid")
        pin("nlon", grid["nlon"], "--grid")
    if scale_factor is not None:
        pin("scale_factor", scale_factor, SCALE_FLAG)
    inner = _shape(state, "blocks.0.norm.weight") if len(blocks) > 1 else None
    if nlat is not None and nlon is not None:
        if inner is not None and len(inner) == 2:
            fits = [s for s in range(1, min(nlat, nlon) + 1) if internal_grid(nlat, nlon, s) == tuple(inner)]
            if not fits:
                raise fail(f"the first block's layer norm {inner} fits no scale factor on a {nlat}x{nlon} grid")
            if sf is None:
                pin("scale_factor", 3 if 3 in fits else fits[0], f"the first block's layer norm {inner}")
            elif sf not in fits:
                raise fail(f"scale_factor {sf} from {how['scale_factor']} gives an internal grid "
                           f"{internal_grid(nlat, nlon, sf)}, the first block's layer norm is on {inner}")
        if sf is None:
            # scale factors giving the same internal grid build the same model: one per grid
            grids = {}
            for s in range(1, min(nlat, nlon) + 1):
                if full_modes(nlat, nlon, s) == L:
                    grids.setdefault(internal_grid(nlat, nlon, s), s)
            if len(grids) == 1:
                pin("scale_factor", next(iter(grids.values())),
                    f"L={L} filter degrees, the full mode count at this scale factor")
            elif len(grids) > 1:
                missing.append(f"the scale factor ({SCALE_FLAG}; L={L} fits {', '.join(map(str, grids.values()))})")
            else:
                missing.append(f"the scale factor ({SCALE_FLAG}; L={L} is not the full mode count of any scale factor "
                               f"on {nlat}x{nlon}, so hard_thresholding_fraction < 1)")
    else:
        what = "nlat and nlon" if nlat is None and nlon is None else "nlon" if nlon is None else "nlat"
        then = "" if sf is not None else (f"; the scale factor then follows from the L={L} filter degrees "
                                          f"unless they were cut (then add {SCALE_FLAG})")
        missing.append(f"the data grid ({what}: {GRID_FLAG}), which the weights do not record{then}")
    if missing:
        raise fail("cannot infer the SFNO's constructor from its state dict: missing " + "; ".join(missing)
                   + f" (or give all constructor arguments as JSON in {sidecar_names})")

    full = full_modes(nlat, nlon, sf)
    if L > full:
        raise fail(f"L={L} filter degrees exceed the {full} modes a {nlat}x{nlon} grid has at scale factor {sf} "
                   f"(check {GRID_FLAG} and {SCALE_FLAG})")
    a.update(img_size=[nlat, nlon], scale_factor=sf, hard_thresholding_fraction=_fraction(L, full))
    img_sources = sorted({how["nlat"], how["nlon"]})
    (inf.given if img_sources == ["--grid"] else inf.inferred)["img_size"] = "; ".join(img_sources)
    (inf.given if how["scale_factor"] == SCALE_FLAG else inf.inferred)["scale_factor"] = how["scale_factor"]
    if how["scale_factor"].startswith(f"L={L}"):  # the scale factor rests on the fraction being 1
        inf.assumed["hard_thresholding_fraction"] = (f"1: L={L} is then the full mode count; a cut spectrum "
                                                     f"needs {SCALE_FLAG}")
    else:
        inf.inferred["hard_thresholding_fraction"] = f"L={L} of {full} modes"
    if grid is not None and grid["type"] is not None:
        a["grid"] = grid["type"]
        inf.given["grid"] = "--grid"
    else:
        a["grid"] = "equiangular"
        inf.assumed["grid"] = f"{_DEFAULT}; set it with {GRID_FLAG}"
    if "grid_internal" not in a:
        a["grid_internal"] = "legendre-gauss"
        inf.assumed["grid_internal"] = _DEFAULT
    a.setdefault("pos_embed", "none")
    inf.inferred.setdefault("pos_embed", "no pos_embed weights")
    a.update(activation_function="gelu", drop_path_rate=0.0, residual_prediction=False)
    inf.assumed.update(activation_function=_DEFAULT, drop_path_rate=_DEFAULT, residual_prediction=_DEFAULT)
    return inf


def _pos_embed_kind(pos) -> tuple[str, str | None]:
    """(pos_embed argument, grid_internal when the values reveal it) for a stored position embedding."""
    import torch
    from torch_harmonics.examples.models._layers import SequencePositionEmbedding, SpectralPositionEmbedding

    c, h, w = (int(s) for s in pos.shape[1:])
    if w == 1:
        return "learnable lat", None
    if torch.allclose(pos, SequencePositionEmbedding((h, w), num_chans=c).position_embeddings, atol=1e-5):
        return "sequence", None
    for grid_internal in ("legendre-gauss", "equiangular", "lobatto"):
        try:
            ref = SpectralPositionEmbedding((h, w), num_chans=c, grid=grid_internal).position_embeddings
        except (ValueError, AssertionError, RuntimeError):  # grid too small for this embedding's degrees
            continue
        if ref.shape == pos.shape and torch.allclose(pos, ref, atol=1e-5):
            return "spectral", grid_internal
    return "learnable latlon", None
