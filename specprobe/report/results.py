"""``specprobe.load_result``: any specprobe result as an object with plot(), table() and to_xarray().

A light wrapper in the reporting layer rather than methods on ProbeResult: the probe layer stays plain
data with no upward imports, sweep/series/coupling files (plain dicts) get the same interface, and
each method is the very function the CLI calls, so ``result.plot(name)`` is the Figure the CLI saves
as ``NAME.png`` and ``result.table()`` is what it prints.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SpecprobeError
from ..probing.result import SCHEMA as GRAD_BY_L_SCHEMA
from ..probing.result import ProbeResult
from .files import read_result_json

FILE_NAMES = ("result.json", "sweep.json", "series.json", "coupling.json", "lookahead.json")


def _png(fig) -> bytes:
    from .figures import figure_bytes

    return figure_bytes(fig, "png")


class _Result:
    kind = ""
    file_name = ""

    def __init__(self, data, source=None):
        self.data = data
        self.source = Path(source) if source is not None else None

    # What each kind draws and prints; subclasses fill these in.
    def _figures(self) -> dict:
        raise NotImplementedError

    @property
    def figure_names(self) -> list[str]:
        return list(self._figures())

    def plot(self, name: str | None = None):
        """The matplotlib Figure the CLI writes as NAME.FMT (the only one when the kind has one)."""
        figures = self._figures()
        if name is None and len(figures) == 1:
            name = next(iter(figures))
        if name not in figures:
            raise SpecprobeError(f"plot: expected one of {', '.join(figures)} for a {self.kind} result, got {name!r}")
        fig = figures[name]()
        # Shown in a notebook even when pyplot (and with it IPython's Figure formatter) was never loaded.
        fig._repr_png_ = lambda: _png(fig)
        return fig

    def table(self):
        raise NotImplementedError

    def to_xarray(self):
        raise NotImplementedError

    def to_dict(self) -> dict:
        return self.data

    def write_figures(self, out_dir, fmt: str = "png") -> list[Path]:
        from .figures import FORMATS, save_figure

        if fmt not in FORMATS:
            raise SpecprobeError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        return [save_figure(self.plot(name), Path(out_dir) / f"{name}.{fmt}", fmt) for name in self.figure_names]

    def write_netcdf(self, path) -> Path:
        from .dataset import write_netcdf

        return write_netcdf(self.to_xarray(), path)

    def to_wandb(self, project: str | None = None, *, run_dir=None, name: str | None = None) -> Path:
        """Log this result as one W&B run, as ``--wandb`` does; returns the run's directory."""
        from .wandb_log import log_to_wandb

        return log_to_wandb(self, project, run_dir=run_dir, name=name)

    def __repr__(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"<specprobe {self.kind} result{where}; plot(): {', '.join(self.figure_names)}>"


class GradByLResult(_Result):
    """One probe (``result.json`` of grad-by-l). Attributes of the ProbeResult read through:
    ``result.stats``, ``result.grad_by_l``, ``result.degrees``..."""
    kind = "grad-by-l"
    file_name = "result.json"

    def __getattr__(self, name):
        if name.startswith("__") or name == "data":
            raise AttributeError(name)
        return getattr(self.data, name)

    def _figures(self) -> dict:
        from .figures import FIGURES, figure_names

        return {name: (lambda f=FIGURES[name][0]: f(self.data)) for name in figure_names(self.data)}

    def table(self):
        from .tables import grad_by_l_report

        return grad_by_l_report(self.data)

    def to_xarray(self):
        from .dataset import grad_by_l_dataset

        return grad_by_l_dataset(self.data)

    def to_dict(self) -> dict:
        return self.data.to_dict()


class SweepResult(_Result):
    kind = "sweep"
    file_name = "sweep.json"

    @property
    def probe(self) -> GradByLResult | None:
        """The probe behind the sweep (every setting a variant), for its per-degree figures."""
        return GradByLResult(ProbeResult.from_dict(self.data["probe"])) if "probe" in self.data else None

    def _figures(self) -> dict:
        from .sweep_report import figure_sweep

        return {"sweep": lambda: figure_sweep(self.data)}

    def table(self):
        from .sweep_report import sweep_report

        return sweep_report(self.data)

    def to_xarray(self):
        from .dataset import sweep_dataset

        return sweep_dataset(self.data)


class SeriesResult(_Result):
    kind = "series"
    file_name = "series.json"

    @property
    def results(self) -> list[GradByLResult]:
        """Each checkpoint's probe, from the result files the series wrote beside series.json."""
        out = []
        for row in self.data["rows"]:
            rel = row.get("result")
            if rel is None or self.source is None:
                return []
            path = self.source.parent / rel
            out.append(GradByLResult(_probe_result(read_result_json(path), path), path))
        return out

    def _figures(self) -> dict:
        from .series_report import figure_series

        return {"series": lambda: figure_series(self.data)}

    def table(self):
        from .series_report import series_table

        return series_table(self.data)

    def to_xarray(self):
        from .dataset import series_dataset

        return series_dataset(self.data, [r.data for r in self.results])


class CouplingResult(_Result):
    kind = "coupling"
    file_name = "coupling.json"

    def _figures(self) -> dict:
        from .coupling_report import figure_coupling

        return {"coupling": lambda: figure_coupling(self.data)}

    def table(self):
        from .coupling_report import coupling_table

        return coupling_table(self.data)

    def to_xarray(self):
        from .dataset import coupling_dataset

        return coupling_dataset(self.data)


class LookaheadResult(_Result):
    """A lookahead sweep (``lookahead.json``): ``plot("lookahead")`` the change per degree with the paired
    band, ``plot("lookahead_sweep")`` the effect against gamma per band; ``table()`` the compact sweep
    table, trajectory and recommendation (``table(details=True)``: the full band table);
    ``recommendation`` the JSON block; ``recommend(rule)`` recomputes it under another rule."""
    kind = "lookahead"
    file_name = "lookahead.json"

    def _figures(self) -> dict:
        from .lookahead_report import figure_lookahead, figure_sweep

        figures = {"lookahead": lambda: figure_lookahead(self.data)}
        if len(self.data.get("variants") or []) > 1:
            figures["lookahead_sweep"] = lambda: figure_sweep(self.data)
        return figures

    def table(self, details: bool = False):
        from .lookahead_report import lookahead_summary, lookahead_table

        return lookahead_table(self.data) if details else lookahead_summary(self.data)

    @property
    def recommendation(self) -> dict:
        from .lookahead_report import ensure_recommendation

        return ensure_recommendation(self.data)["recommendation"]

    @property
    def sweep(self) -> list[dict]:
        """The compact sweep table's rows: per whitened arm and band, the paired judgement of ES, MSE..."""
        from .lookahead_report import ensure_recommendation

        return ensure_recommendation(self.data)["sweep"]

    def recommend(self, rule=None, **rule_options) -> dict:
        """The recommendation under another rule (``Rule`` or its fields, e.g. ``max_cost=0.01``), from the
        file alone; the stored one is left as it is."""
        from ..probing.recommend import add_recommendation
        from ..probing.recommend import Rule

        if rule is None:
            rule = Rule(**{"k": (self.data.get("settings") or {}).get("k"), **rule_options})
        return add_recommendation(dict(self.data), rule)["recommendation"]

    def to_xarray(self):
        from .dataset import lookahead_dataset

        return lookahead_dataset(self.data)


_BY_SCHEMA = {GRAD_BY_L_SCHEMA: GradByLResult, "specprobe.sweep/1": SweepResult,
              "specprobe.series/1": SeriesResult, "specprobe.coupling/1": CouplingResult,
              "specprobe.lookahead/1": LookaheadResult}


def _probe_result(obj: dict, where) -> ProbeResult:
    try:
        return ProbeResult.from_dict(obj)
    except (ValueError, TypeError, KeyError) as e:
        raise SpecprobeError(f"{where}: malformed result file ({e})") from None


def load_result(source):
    """A result object for a specprobe JSON file (result/sweep/series/coupling/lookahead), an output directory
    holding one, an in-memory ProbeResult (``specprobe.probe(...)``) or a result dict."""
    if isinstance(source, _Result):
        return source
    if isinstance(source, ProbeResult):
        return GradByLResult(source)
    path = None
    if isinstance(source, dict):
        obj = source
    else:
        path = Path(source)
        if path.is_dir():
            found = [path / n for n in FILE_NAMES if (path / n).is_file()]
            if len(found) != 1:
                what = "no" if not found else "several"
                raise SpecprobeError(f"{path}: {what} specprobe result files ({', '.join(FILE_NAMES)}) "
                                     "in the directory")
            path = found[0]
        obj = read_result_json(path)
    kind = _BY_SCHEMA.get(obj.get("schema"))
    if kind is None:
        raise SpecprobeError(f"{path or 'result'}: unknown result schema {obj.get('schema')!r}; "
                             f"expected one of {', '.join(_BY_SCHEMA)}")
    if kind is GradByLResult:
        return GradByLResult(_probe_result(obj, path or "result"), path)
    required = {"specprobe.sweep/1": ("settings", "bands", "baseline"), "specprobe.series/1": ("rows",),
                "specprobe.coupling/1": ("variants", "loss_bands", "degrees"),
                "specprobe.lookahead/1": ("arms", "before", "degrees", "channels")}[obj["schema"]]
    missing = [k for k in required if k not in obj]
    if missing:
        raise SpecprobeError(f"{path or 'result'}: malformed {kind.kind} file (missing {', '.join(missing)})")
    return kind(obj, path)
