"""The ``specprobe.th-sfno`` checkpoint format for torch-harmonics SFNOs, and plain state dicts.

A format-1 file is one ``torch.save``d dict of plain containers, str, float, int and tensors, so it
loads with torch's weights-only unpickler (``safe_load.load_checkpoint_file``) and no allow-list:

    format: "specprobe.th-sfno", format_version: 1
    model: {class, args (SphericalFourierNeuralOperator constructor arguments), library_versions}
    stochastic: {kind: "input-noise", n_noise, noise: "isotropic", noise_lmax, noise_spectrum_slope,
                 residual} or None (a deterministic SFNO)
    channels: {names, units, long_names}
    normalization: {means, stds} per channel, physical units (loss space = (x - mean) / std), or None
    grid: {nlat, nlon, type}                          the data grid
    state_dict: the SFNO's own state dict (keys "blocks.{i}.global_conv.weight", ...)
    training: {...} free-form JSON-able metadata (data, steps, loss, seed, scores, versions)

A torch-harmonics SFNO state dict as users have it also loads: bare, wrapped (``state_dict``,
``model_state``, ``model``), a PyTorch Lightning checkpoint, keys behind ``model.`` / ``module.`` /
``_orig_mod.`` prefixes (statedict.py). Its constructor arguments come from a JSON sidecar
(``<ckpt>.json``, e.g. ``model.pt.json``, or an explicit path) when there is one, else they are
inferred from the weights plus ``--grid`` / ``--scale-factor`` (infer.py). It has no noise and no
normalisation: members are identical, data is used as is, and channels are named ch0, ch1, ...

No torch at module level: the CLI imports this to find the default checkpoint.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import CheckpointError
from ..safe_load import load_checkpoint_file
from .format import (  # noqa: F401 - the format's names, used here and by callers
    DEFAULT_CHECKPOINT,
    DEFAULT_SAMPLE,
    FAMILY,
    FORMAT,
    FORMAT_VERSION,
    GRIDS,
    SFNO_CLASS,
    SPECTRAL_LAYOUT,
    atomic_torch_save,
    default_checkpoint_path,
    default_sample_path,
    is_th_checkpoint,
)

@dataclass
class CheckpointSpec:
    """Everything a checkpoint declares, validated; ``plain`` for a state dict + sidecar."""

    path: str
    args: dict
    stochastic: dict | None
    channel_names: list
    units: list
    long_names: list
    means: list | None
    stds: list | None
    grid: dict
    state_dict: dict
    training: dict = field(default_factory=dict)
    plain: bool = False
    notes: list = field(default_factory=list)
    sidecar: str | None = None
    container: str | None = None  # where the state dict sat in the file (plain only)
    inference: dict | None = None  # {inferred, given, assumed}: how each constructor argument was obtained


def save_checkpoint(path, model, *, channel_names, units, means, stds, data_grid: str,
                    long_names=None, training: dict | None = None) -> Path:
    """Write ``model`` (a :class:`StochasticSFNO`) in format 1, atomically. means/stds: physical units."""
    import torch
    import torch_harmonics

    sfno = model.sfno
    nlat, nlon = sfno.img_size
    obj = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"class": SFNO_CLASS, "args": sfno_args(sfno),
                  "library_versions": {"torch": str(torch.__version__),
                                       "torch_harmonics": str(torch_harmonics.__version__)}},
        "stochastic": model.settings(),
        "channels": {"names": list(channel_names), "units": list(units),
                     "long_names": list(long_names or channel_names)},
        "normalization": None if means is None else {"means": [float(v) for v in means],
                                                     "stds": [float(v) for v in stds]},
        "grid": {"nlat": int(nlat), "nlon": int(nlon), "type": str(data_grid)},
        "state_dict": {k: v.detach().cpu().clone() for k, v in sfno.state_dict().items()},
        "training": json.loads(json.dumps(training or {})),  # JSON-able, hence weights_only-safe
    }
    atomic_torch_save(obj, path)
    return Path(path)


def sfno_args(sfno) -> dict:
    """The constructor arguments a built SFNO was made with, as stored in ``model.args``."""
    args = getattr(sfno, "_specprobe_args", None)
    if args is None:
        raise ValueError("sfno: build it with specprobe.models.th.model.build_sfno so its arguments are known")
    return json.loads(json.dumps(args))


# ----------------------------------------------------------------------------------------------
# reading


def _fail(path, msg) -> CheckpointError:
    return CheckpointError(f"{path}: {msg}")


def sidecar_candidates(path) -> list[Path]:
    p = Path(path)
    return [p.with_name(p.name + ".json"), p.with_suffix(".json")]


def _find_sidecar(path, sidecar) -> Path | None:
    if sidecar is not None:
        side = Path(sidecar)
        if not side.is_file():
            raise _fail(path, f"sidecar {side}: no such file")
        return side
    return next((c for c in sidecar_candidates(path) if c.is_file() and c != Path(path)), None)


def _read_sidecar(path, side: Path) -> dict:
    try:
        args = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _fail(path, f"sidecar {side}: not valid JSON ({' '.join(str(e).split())})") from e
    if isinstance(args, dict) and isinstance(args.get("args"), dict):
        args = args["args"]  # also accept {"class": ..., "args": {...}}
    if not isinstance(args, dict):
        raise _fail(path, f"sidecar {side}: expected a JSON object of constructor arguments")
    return args


def _check_options_agree(path, args: dict, grid, scale_factor, declared_by: str) -> None:
    """--grid / --scale-factor against what a file or sidecar declares: equal, or a one-line error."""
    from .infer import check_scale_factor, parse_grid

    grid, scale_factor = parse_grid(grid), check_scale_factor(scale_factor)
    img = list(args.get("img_size", (128, 256)))
    kind = args.get("grid", "equiangular")
    if grid is not None and ([grid["nlat"], grid["nlon"]] != img or grid["type"] not in (None, kind)):
        raise _fail(path, f"--grid {grid['nlat']}x{grid['nlon']}{':' + grid['type'] if grid['type'] else ''} "
                          f"contradicts the {img[0]}x{img[1]}:{kind} grid {declared_by} declares")
    if scale_factor is not None and scale_factor != args.get("scale_factor", 3):
        raise _fail(path, f"--scale-factor {scale_factor} contradicts the scale factor {args.get('scale_factor', 3)} "
                          f"{declared_by} declares")


def _check_number_list(path, name, values, n):
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise _fail(path, f"{name}: expected a list of {n} numbers, got {values!r:.80}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise _fail(path, f"{name}: expected finite numbers, got {v!r}")


def read_spec(obj, path, *, sidecar=None, grid=None, scale_factor=None) -> CheckpointSpec:
    """Validate a loaded checkpoint object (format 1 or a state dict) into a :class:`CheckpointSpec`.

    grid, scale_factor: ``--grid`` / ``--scale-factor``, for what a state dict's weights do not tell."""
    from .statedict import find_sfno_state_dict

    if is_th_checkpoint(obj):
        spec = _read_format(obj, path)
        _check_options_agree(path, spec.args, grid, scale_factor, "the checkpoint")
        return spec
    if isinstance(obj, dict) and "format" in obj:
        raise _fail(path, f"unknown checkpoint format {obj['format']!r:.60}; expected {FORMAT!r}")
    found = find_sfno_state_dict(obj, path)
    if found is None:
        if isinstance(obj, dict) and "stepper" in obj:
            raise _fail(path, "is an fme/ACE checkpoint, not a torch-harmonics SFNO file")
        what = f"a dict with keys {sorted(map(str, obj))[:6]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise _fail(path, f"not a torch-harmonics SFNO checkpoint (holds {what}); expected format {FORMAT!r} "
                          "or an SFNO state dict (blocks.{i}.global_conv.weight ...)")
    side = _find_sidecar(path, sidecar)
    side_names = " or ".join(c.name for c in sidecar_candidates(path))
    inference = None
    if side is not None:  # the sidecar wins over inference
        args = _read_sidecar(path, side)
        _check_options_agree(path, args, grid, scale_factor, f"sidecar {side.name}")
    else:
        from .infer import infer_sfno_args

        inf = infer_sfno_args(found.state, path=path, grid=grid, scale_factor=scale_factor, sidecar_names=side_names)
        args = inf.args
        inference = {"inferred": inf.inferred, "given": inf.given, "assumed": inf.assumed}
    n = args.get("out_chans", 3)
    if args.get("in_chans", 3) != n:
        raise _fail(path, f"plain SFNO with in_chans={args.get('in_chans', 3)} != out_chans={n}: the probe "
                          "needs a state-to-state model")
    img = args.get("img_size", (128, 256))
    _check_grid_values(path, img, args.get("grid", "equiangular"))
    names = [f"ch{i}" for i in range(int(n))]
    notes = ["no noise (deterministic: ensemble members identical), no normalisation (data used as is), "
             "channels named ch0.. (names unknown)"]
    if inference is not None:
        notes.append("constructor arguments inferred from the weights, verified by load_state_dict(strict=True); "
                     f"assumed: {', '.join(inference['assumed'])}")
    return CheckpointSpec(
        path=str(path), args=args, stochastic=None, channel_names=names, units=["unknown"] * len(names),
        long_names=names, means=None, stds=None,
        grid={"nlat": int(img[0]), "nlon": int(img[1]), "type": args.get("grid", "equiangular")},
        state_dict=found.state, plain=True, sidecar=None if side is None else str(side), notes=notes,
        container=found.describe(), inference=inference,
    )


def _check_grid_values(path, img, grid):
    if (not isinstance(img, (list, tuple)) or len(img) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 2 for v in img)):
        raise _fail(path, f"img_size: expected [nlat, nlon] integers >= 2, got {img!r:.60}")
    if grid not in GRIDS:
        raise _fail(path, f"grid: expected one of {GRIDS}, got {grid!r:.60}")


def _read_format(obj, path) -> CheckpointSpec:
    version = obj.get("format_version")
    if version != FORMAT_VERSION:
        raise _fail(path, f"{FORMAT} format_version {version!r:.40} is not supported (this specprobe reads "
                          f"version {FORMAT_VERSION})")
    for key, kind in (("model", dict), ("channels", dict), ("grid", dict), ("state_dict", dict)):
        if not isinstance(obj.get(key), kind):
            raise _fail(path, f"{FORMAT} file without a valid {key!r} entry")
    model, channels, grid = obj["model"], obj["channels"], obj["grid"]
    if model.get("class") != SFNO_CLASS:
        raise _fail(path, f"model class {model.get('class')!r:.80} is not supported; expected {SFNO_CLASS}")
    args = model.get("args")
    if not isinstance(args, dict):
        raise _fail(path, "model.args: expected a dict of constructor arguments")
    names = channels.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
        raise _fail(path, "channels.names: expected a non-empty list of strings")
    n = len(names)
    units = channels.get("units") or ["unknown"] * n
    long_names = channels.get("long_names") or list(names)
    for key, values in (("channels.units", units), ("channels.long_names", long_names)):
        if not isinstance(values, list) or len(values) != n:
            raise _fail(path, f"{key}: expected {n} entries, one per channel")
    img = args.get("img_size")
    _check_grid_values(path, img, args.get("grid", "equiangular"))
    if [grid.get("nlat"), grid.get("nlon")] != list(img) or grid.get("type") != args.get("grid", "equiangular"):
        raise _fail(path, f"grid {grid} does not match the model's img_size {list(img)} / grid "
                          f"{args.get('grid', 'equiangular')!r}")
    stochastic = obj.get("stochastic")
    n_noise = 0
    if stochastic is not None:
        if not isinstance(stochastic, dict) or stochastic.get("kind") != "input-noise":
            raise _fail(path, f"stochastic: unsupported settings {stochastic!r:.80}; expected kind 'input-noise'")
        n_noise = stochastic.get("n_noise")
        if not isinstance(n_noise, int) or isinstance(n_noise, bool) or n_noise < 0:
            raise _fail(path, f"stochastic.n_noise: expected an integer >= 0, got {n_noise!r}")
        if stochastic.get("noise", "isotropic") != "isotropic":
            raise _fail(path, f"stochastic.noise {stochastic.get('noise')!r}: only 'isotropic' is supported")
        noise_lmax, slope = stochastic.get("noise_lmax"), stochastic.get("noise_spectrum_slope", 0.0)
        if noise_lmax is not None and (not isinstance(noise_lmax, int) or isinstance(noise_lmax, bool)
                                       or not 1 <= noise_lmax <= img[0]):
            raise _fail(path, f"stochastic.noise_lmax: expected an integer in [1, nlat={img[0]}], got {noise_lmax!r}")
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not math.isfinite(slope):
            raise _fail(path, f"stochastic.noise_spectrum_slope: expected a finite number, got {slope!r}")
    if args.get("in_chans") != n + n_noise or args.get("out_chans") != n:
        raise _fail(path, f"model.args in_chans={args.get('in_chans')}, out_chans={args.get('out_chans')} do not "
                          f"match {n} channels + {n_noise} noise channels")
    norm = obj.get("normalization")
    means = stds = None
    if norm is not None:
        if not isinstance(norm, dict):
            raise _fail(path, "normalization: expected {means, stds} or None")
        means, stds = norm.get("means"), norm.get("stds")
        _check_number_list(path, "normalization.means", means, n)
        _check_number_list(path, "normalization.stds", stds, n)
        if any(s <= 0 for s in stds):
            raise _fail(path, f"normalization.stds: expected positive numbers, got {stds}")
    training = obj.get("training") if isinstance(obj.get("training"), dict) else {}
    return CheckpointSpec(
        path=str(path), args=args, stochastic=stochastic, channel_names=list(names), units=list(units),
        long_names=list(long_names), means=means, stds=stds,
        grid={"nlat": int(img[0]), "nlon": int(img[1]), "type": args.get("grid", "equiangular")},
        state_dict=obj["state_dict"], training=training,
    )


def build_model(spec: CheckpointSpec, *, device="cpu"):
    """The :class:`StochasticSFNO` a spec declares, with its weights; every mismatch is one line."""
    import torch

    from ..resources import check_grid_fits
    from .model import StochasticSFNO

    path = spec.path
    check_grid_fits(spec.grid["nlat"], spec.grid["nlon"], n_transforms=6, device=device, what=path)
    st = spec.stochastic or {}
    try:
        model = StochasticSFNO(spec.args, n_state=len(spec.channel_names), n_noise=st.get("n_noise", 0),
                               noise_slope=st.get("noise_spectrum_slope", 0.0), noise_lmax=st.get("noise_lmax"),
                               residual=bool(st.get("residual", False)))
    except (TypeError, ValueError, AssertionError, NotImplementedError, RuntimeError) as e:
        why = " ".join(str(e).split())[:200]
        raise _fail(path, f"cannot build the SFNO from its constructor arguments: {why}") from e
    how = "the constructor arguments inferred from it" if spec.inference else "its declared constructor arguments"
    _check_state_dict(path, model.sfno, spec.state_dict, how)
    model.sfno.load_state_dict(spec.state_dict, strict=True)
    for name, t in model.sfno.state_dict().items():
        if t.is_floating_point() or t.is_complex():
            if not torch.isfinite(t).all():
                raise _fail(path, f"NaN or Inf in weights {name}")
    return model.to(device)


def _check_state_dict(path, sfno, state, how="its declared constructor arguments") -> None:
    """Summarise how a state dict disagrees with the model built from its declared arguments, in one line."""
    import torch

    expected = sfno.state_dict()
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise _fail(path, f"state dict entry {bad[0]} is not a tensor")
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    dtypes = [f"{k} {state[k].dtype} vs {v.dtype}" for k, v in expected.items()
              if k in state and state[k].shape == v.shape and state[k].is_complex() != v.is_complex()]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch (file vs model)", shapes),
                         ("dtype mismatch (file vs model)", dtypes)):
        if items:
            more = f" (+{len(items) - 2} more)" if len(items) > 2 else ""
            parts.append(f"{label}: {', '.join(items[:2])}{more}")
    if parts:
        raise _fail(path, f"state dict does not match {how}: " + "; ".join(parts))


def read_checkpoint(path=None, *, trust: bool = False, sidecar=None, obj=None, grid=None,
                    scale_factor=None) -> CheckpointSpec:
    """Load a file (None: the bundled default) safely and validate what it declares.

    obj: the file's already safely loaded content (the registry reads each file once)."""
    path = default_checkpoint_path() if path is None else Path(path)
    if obj is None:
        obj = load_checkpoint_file(path, trust=trust)
    return read_spec(obj, path, sidecar=sidecar, grid=grid, scale_factor=scale_factor)


def load_th_target(path=None, *, device="cpu", trust: bool = False, sidecar=None, obj=None, grid=None,
                   scale_factor=None):
    """The :class:`~specprobe.models.base.ProbeTarget` of a torch-harmonics SFNO file (None: the default)."""
    from .target import THSFNOTarget

    spec = read_checkpoint(path, trust=trust, sidecar=sidecar, obj=obj, grid=grid, scale_factor=scale_factor)
    return THSFNOTarget(spec, build_model(spec, device=device), device=device)
