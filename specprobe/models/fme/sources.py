"""What ``--data`` names, as an fme data config, and the dataset fme builds from it.

Every form ends as the ``dataset:`` block of fme's ``DataLoaderConfig`` (an ``XarrayDataConfig``,
``{concat: [...]}`` or ``{merge: [...]}``), parsed by dacite exactly as ``fme.ace.train`` parses its
YAML, and fme builds, subsets, reads (``fill_nans``, ``isel``, ``overwrite``, ``n_repeats``) and
merges the data itself. So the probe reads what training read:

    PATH.nc / DIR / GLOB      netCDF: XarrayDataConfig(data_path=<dir>, file_pattern=<name or glob>)
    STORE.zarr                XarrayDataConfig(data_path=<parent>, file_pattern=<store>, engine=zarr)
    FILE.yaml                 a loader config (with ``dataset:``) or a dataset config itself
    config:train              ``train_loader`` of the experiment's config.yaml (fme's trainer writes
    config:validation         it next to training_checkpoints/); ``validation.loader`` (the first
                              entry when validation is a list)

The time window maps onto fme's own ``subset: {start_time, stop_time}`` of every source: samples
are chosen by their initial time, inclusive, as fme does.
"""

from __future__ import annotations

import glob as _glob
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError

CONFIG_SECTIONS = {"config:train": "train_loader", "config:validation": "validation.loader"}
_GLOB_CHARS = set("*?[")


@dataclass
class DataSource:
    """A resolved ``--data``: the loader config as a plain dict, and what to call it in messages."""

    label: str
    kind: str  # netcdf, zarr, yaml, config:train, config:validation
    loader: dict  # fme DataLoaderConfig as a dict (at least ``dataset``)

    def provenance(self) -> dict:
        return {"source": self.label, "kind": self.kind, "fme_loader_config": self.loader}


def resolve_source(data, checkpoint_path=None) -> DataSource:
    """``data`` (a path, glob, YAML file or config:SECTION; a DataSource passes through) as a DataSource."""
    if isinstance(data, DataSource):
        return data
    text = str(data)
    if text in CONFIG_SECTIONS:
        return _from_experiment_config(text, checkpoint_path)
    if text.startswith("config:"):
        raise DataError(f"--data {text}: unknown section; use one of {sorted(CONFIG_SECTIONS)}")
    p = Path(text)
    if p.suffix in (".yaml", ".yml"):
        return _from_yaml_file(p)
    if p.is_dir() and _is_zarr_store(p):
        return _zarr(p)
    if p.is_dir():
        if not any(p.glob("*.nc")):
            raise DataError(f"{p}: directory holds no *.nc files and is not a zarr store")
        return DataSource(text, "netcdf", {"dataset": {"data_path": str(p.resolve()), "file_pattern": "*.nc"}})
    if p.is_file():
        p = p.resolve()
        return DataSource(text, "netcdf", {"dataset": {"data_path": str(p.parent), "file_pattern": p.name}})
    if _GLOB_CHARS & set(text):
        if not _glob.glob(text):
            raise DataError(f"{text}: no file matches this glob")
        root, pattern = _split_glob(text)
        zarr = pattern.endswith(".zarr")
        dataset = {"data_path": root, "file_pattern": pattern, **({"engine": "zarr"} if zarr else {})}
        return DataSource(text, "zarr" if zarr else "netcdf", {"dataset": dataset})
    raise DataError(f"{text}: no such file, directory, zarr store or glob match "
                    f"(--data also takes a data YAML file, {' or '.join(sorted(CONFIG_SECTIONS))})")


def _is_zarr_store(p: Path) -> bool:
    return p.suffix == ".zarr" or any((p / marker).exists() for marker in (".zgroup", "zarr.json"))


def _zarr(p: Path) -> DataSource:
    p = p.resolve()
    return DataSource(str(p), "zarr", {"dataset": {"data_path": str(p.parent), "file_pattern": p.name, "engine": "zarr"}})


def _split_glob(text: str) -> tuple[str, str]:
    """The directory before the first glob character, and the pattern below it (fme globs data_path/pattern)."""
    parts = Path(text).parts
    first = next(i for i, part in enumerate(parts) if _GLOB_CHARS & set(part))
    root = Path(*parts[:first]) if first else Path(".")
    return str(root.resolve()), str(Path(*parts[first:]))


def _load_yaml(path: Path, what: str) -> dict:
    import yaml

    try:
        text = path.read_text()
    except OSError as e:
        raise DataError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise DataError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or type(e).__name__}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: {what} must be a YAML mapping, got {type(obj).__name__}")
    return obj


def _from_yaml_file(path: Path) -> DataSource:
    if not path.is_file():
        raise DataError(f"{path}: no such data YAML file")
    obj = _load_yaml(path, "a data config")
    if "dataset" in obj:
        return DataSource(str(path), "yaml", dict(obj))
    if {"data_path", "merge", "concat"} & set(obj):
        return DataSource(str(path), "yaml", {"dataset": obj})
    if "train_loader" in obj or "validation" in obj:
        raise DataError(f"{path}: a training config; use --data config:train or config:validation with a checkpoint "
                        "in its experiment's training_checkpoints/, or put one loader's dataset: block in a file")
    raise DataError(f"{path}: not an fme data config: expected a 'dataset:' block (DataLoaderConfig) "
                    f"or 'data_path', 'merge' or 'concat' at the top; found keys {sorted(obj)[:8]}")


def experiment_config_path(checkpoint_path) -> Path:
    """``<experiment_dir>/config.yaml`` for a checkpoint in ``<experiment_dir>/training_checkpoints/``."""
    p = Path(checkpoint_path).resolve()
    yaml_path = p.parent.parent / "config.yaml"
    if p.parent.name != "training_checkpoints" or not yaml_path.is_file():
        raise DataError(f"{checkpoint_path}: no experiment config.yaml (fme's trainer writes <experiment_dir>/config.yaml "
                        "beside <experiment_dir>/training_checkpoints/); pass the data itself or a data YAML file")
    return yaml_path


def _from_experiment_config(which: str, checkpoint_path) -> DataSource:
    if checkpoint_path is None:
        raise DataError(f"--data {which} reads the checkpoint's experiment config.yaml: it needs an fme checkpoint file")
    yaml_path = experiment_config_path(checkpoint_path)
    cfg = _load_yaml(yaml_path, "the training config")
    section = CONFIG_SECTIONS[which]
    if which == "config:train":
        loader = cfg.get("train_loader")
    else:
        validation = cfg.get("validation")
        if isinstance(validation, list):
            validation = validation[0] if validation else None
        loader = validation.get("loader") if isinstance(validation, dict) else None
    if not isinstance(loader, dict) or "dataset" not in loader:
        raise DataError(f"{yaml_path}: no {section} with a dataset (the section --data {which} reads)")
    return DataSource(f"{which} ({yaml_path})", which, dict(loader))


# ---------------------------------------------------------------- fme


def parse_loader(source: DataSource):
    """fme's ``DataLoaderConfig`` from the dict, with dacite strict as ``fme.ace.train`` parses it.

    Our own batching replaces the loader's: batch_size and worker settings do not apply (batch_size is
    filled in when the source gives none)."""
    import dacite
    from fme.ace.data_loading.config import DataLoaderConfig

    loader = {"batch_size": 1, **source.loader}
    try:
        return dacite.from_dict(DataLoaderConfig, loader, config=dacite.Config(strict=True))
    except Exception as e:  # noqa: BLE001 - dacite and fme's __post_init__ raise many types
        detail = _dataset_error(loader.get("dataset")) or one_line(e)
        raise DataError(f"{source.label}: not a valid fme data config: {detail}") from None


def _dataset_error(dataset) -> str | None:
    """dacite reports a bad ``dataset:`` as matching no member of the union; name the member meant."""
    import dacite
    from fme.core.dataset.concat import ConcatDatasetConfig
    from fme.core.dataset.merged import MergeDatasetConfig
    from fme.core.dataset.xarray import XarrayDataConfig

    if not isinstance(dataset, dict):
        return None
    cls = MergeDatasetConfig if "merge" in dataset else ConcatDatasetConfig if "concat" in dataset else XarrayDataConfig
    try:
        dacite.from_dict(cls, dataset, config=dacite.Config(strict=True))
    except Exception as e:  # noqa: BLE001
        return f"dataset as {cls.__name__}: {one_line(e)}"
    return None


def leaves(dataset_config) -> list:
    """Every ``XarrayDataConfig`` under a dataset config (itself, or inside concat/merge)."""
    for key in ("concat", "merge"):
        members = getattr(dataset_config, key, None)
        if members is not None:
            return [leaf for m in members for leaf in leaves(m)]
    return [dataset_config]


def apply_time_window(dataset_config, time_start, time_stop, label: str) -> None:
    """fme's own ``subset: {start_time, stop_time}`` on every source (inclusive, by initial time)."""
    if time_start is None and time_stop is None:
        return
    from fme.core.dataset.time import TimeSlice
    from fme.core.typing_ import Slice

    window = TimeSlice(start_time=None if time_start is None else str(time_start),
                       stop_time=None if time_stop is None else str(time_stop))
    for leaf in leaves(dataset_config):
        if leaf.subset != Slice():
            raise DataError(f"{label}: {leaf.data_path} already selects times (subset: {leaf.subset}); "
                            "give either that subset or --time-start/--time-stop")
        leaf.update_subset(window)


def one_line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return f"{type(e).__name__}: {text[:limit]}"
