"""``specprobe.load_result``: any specprobe result as an object with plot(), table() and to_xarray().

A light wrapper in the reporting layer rather than methods on ProbeResult: the probe layer stays plain
data with no upward imports, sweep/series/coupling files (plain dicts) get the same interface, and
each method is the very function the CLI calls, so ``result.plot(name)`` is the Figure the CLI saves
as ``NAME.png`` and ``result.table()`` is what it prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecprobeError
from ..probing.result import SCHEMA as GRAD_BY_L_SCHEMA
from ..probing.result import ProbeResult
from .files import read_result_json

if TYPE_CHECKING:
    import os

    import xarray
    from matplotlib.figure import Figure

    from ..probing.recommend import Rule

FILE_NAMES = ("result.json", "sweep.json", "series.json", "coupling.json", "lookahead.json")


def _png(fig) -> bytes:
    from .figures import figure_bytes

    return figure_bytes(fig, "png")


class _Result:
    """What every loaded result offers: figures, a table, an xarray Dataset, the raw data and writers.

    Attributes:
        kind: the result kind (``grad-by-l``, ``sweep``, ``series``, ``coupling``, ``lookahead``).
        file_name: the file the CLI writes for this kind (``result.json``, ``sweep.json``, ...).
        data: the result: a :class:`~specprobe.probing.result.ProbeResult` for grad-by-l, the JSON dict
            otherwise.
        source: the file it was read from, or None when built in memory.
    """

    kind = ""
    file_name = ""

    def __init__(self, data: Any, source: str | os.PathLike[str] | None = None):
        self.data = data
        self.source = Path(source) if source is not None else None

    # What each kind draws and prints; subclasses fill these in.
    def _figures(self) -> dict:
        raise NotImplementedError

    @property
    def figure_names(self) -> list[str]:
        """The names :meth:`plot` accepts, in the order :meth:`write_figures` writes them."""
        return list(self._figures())

    def plot(self, name: str | None = None) -> Figure:
        """The matplotlib Figure the CLI writes as NAME.FMT (the only one when the kind has one).

        The Figure shows itself in a notebook even when pyplot was never imported.

        Args:
            name: one of :attr:`figure_names`; None: the only figure, for a kind that has exactly one.

        Returns:
            A new matplotlib Figure.

        Raises:
            SpecprobeError: ``name`` is not one of :attr:`figure_names` (or None while there are several).
        """
        figures = self._figures()
        if name is None and len(figures) == 1:
            name = next(iter(figures))
        if name not in figures:
            raise SpecprobeError(f"plot: expected one of {', '.join(figures)} for a {self.kind} result, got {name!r}")
        fig = figures[name]()
        # Shown in a notebook even when pyplot (and with it IPython's Figure formatter) was never loaded.
        fig._repr_png_ = lambda: _png(fig)
        return fig

    def table(self) -> Any:
        """What the CLI prints for this result, as a rich renderable (a notebook shows it as is).

        Returns:
            A rich renderable (a Table or a group of them).
        """
        raise NotImplementedError

    def to_xarray(self) -> xarray.Dataset:
        """The result as an xarray Dataset (what ``--netcdf`` writes).

        Returns:
            The Dataset; each kind's ``to_xarray`` says what it holds.

        Raises:
            SpecprobeError: xarray is not installed (``pip install 'specprobe[xarray]'``).
        """
        raise NotImplementedError

    def to_dict(self) -> dict:
        """The result as the JSON-ready dict of its file.

        Returns:
            The dict (for the JSON kinds, the loaded dict itself, not a copy).
        """
        return self.data

    def write_figures(self, out_dir: str | os.PathLike[str], fmt: str = "png") -> list[Path]:
        """Write every figure as ``out_dir/NAME.FMT``, atomically, as the CLI does.

        Args:
            out_dir: an existing directory.
            fmt: ``"png"`` (default), ``"svg"`` or ``"pdf"``.

        Returns:
            The paths written, in the order of :attr:`figure_names`.

        Raises:
            SpecprobeError: ``fmt`` is not a known format.
        """
        from .figures import FORMATS, save_figure

        if fmt not in FORMATS:
            raise SpecprobeError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        return [save_figure(self.plot(name), Path(out_dir) / f"{name}.{fmt}", fmt) for name in self.figure_names]

    def write_netcdf(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_xarray` as a netCDF4 file, atomically (written beside ``path``, then renamed).

        Args:
            path: the file to write (replaced if it exists).

        Returns:
            The path written.

        Raises:
            SpecprobeError: xarray is not installed.
        """
        from .dataset import write_netcdf

        return write_netcdf(self.to_xarray(), path)

    def to_wandb(self, project: str | None = None, *, run_dir: str | os.PathLike[str] | None = None,
                 name: str | None = None) -> Path:
        """Log this result as one W&B run, as ``--wandb`` does; returns the run's directory.

        Args:
            project: the W&B project; None: ``"specprobe"``.
            run_dir: where W&B writes the run (created if missing); the ``WANDB_DIR`` environment variable
                takes precedence; None: the current directory.
            name: the run's name; None: W&B picks one.

        Returns:
            The run's directory.

        Raises:
            SpecprobeError: wandb is not installed (``pip install 'specprobe[wandb]'``).
        """
        from .wandb_log import log_to_wandb

        return log_to_wandb(self, project, run_dir=run_dir, name=name)

    def __repr__(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"<specprobe {self.kind} result{where}; plot(): {', '.join(self.figure_names)}>"


class GradByLResult(_Result):
    """One probe (``result.json`` of grad-by-l). Attributes of the ProbeResult read through:
    ``result.stats``, ``result.grad_by_l``, ``result.degrees``...

    ``data`` is the :class:`~specprobe.probing.result.ProbeResult`.
    """
    kind = "grad-by-l"
    file_name = "result.json"

    def __getattr__(self, name):
        if name.startswith("__") or name == "data":
            raise AttributeError(name)
        return getattr(self.data, name)

    def _figures(self) -> dict:
        from .figures import FIGURES, figure_names

        return {name: (lambda f=FIGURES[name][0]: f(self.data)) for name in figure_names(self.data)}

    def table(self) -> Any:
        """Everything ``specprobe grad-by-l`` prints.

        Returns:
            One rich renderable: the optimizer view, the band and layer tables, predictability (and the
            checkpoint's Adam statistics where it has them), then the verdict.
        """
        from .tables import grad_by_l_report

        return grad_by_l_report(self.data)

    def to_xarray(self) -> xarray.Dataset:
        """The probe as an xarray Dataset (what ``--netcdf`` writes as ``result.nc``).

        Returns:
            Dims variant, degree, channel, layer (and band, parameter for the statistics); units and long
            names in ``.attrs``, ``wavelength_km`` on degree.

        Raises:
            SpecprobeError: xarray is not installed.
        """
        from .dataset import grad_by_l_dataset

        return grad_by_l_dataset(self.data)

    def to_dict(self) -> dict:
        """The probe as its ``result.json`` dict.

        Returns:
            :meth:`ProbeResult.to_dict`: a new, JSON-safe dict.
        """
        return self.data.to_dict()


class SweepResult(_Result):
    """A whitening sweep (``sweep.json``): ``plot("sweep")``, its table and Dataset; ``probe`` the probe behind it."""

    kind = "sweep"
    file_name = "sweep.json"

    @property
    def probe(self) -> GradByLResult | None:
        """The probe behind the sweep (every setting a variant), for its per-degree figures.

        None when the sweep file holds no probe.
        """
        return GradByLResult(ProbeResult.from_dict(self.data["probe"])) if "probe" in self.data else None

    def _figures(self) -> dict:
        from .sweep_report import figure_sweep

        return {"sweep": lambda: figure_sweep(self.data)}

    def table(self) -> Any:
        """The sweep table the CLI prints, as a rich renderable."""
        from .sweep_report import sweep_report

        return sweep_report(self.data)

    def to_xarray(self) -> xarray.Dataset:
        """The sweep's probe (every setting is a variant) plus gamma, eps_frac, measured and predicted boost.

        Raises:
            SpecprobeError: xarray is not installed.
        """
        from .dataset import sweep_dataset

        return sweep_dataset(self.data)


class SeriesResult(_Result):
    """A checkpoint series (``series.json``): ``plot("series")``, its table and Dataset; ``results`` each probe."""

    kind = "series"
    file_name = "series.json"

    @property
    def results(self) -> list[GradByLResult]:
        """Each checkpoint's probe, from the result files the series wrote beside series.json.

        Empty when the series was not read from a file or a row names no result file.

        Raises:
            SpecprobeError: a named result file is missing or malformed.
        """
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

    def table(self) -> Any:
        """The series table the CLI prints, as a rich renderable."""
        from .series_report import series_table

        return series_table(self.data)

    def to_xarray(self) -> xarray.Dataset:
        """One entry per checkpoint (dim checkpoint, coord epoch), with the checkpoints' curves when
        :attr:`results` finds their files.

        Raises:
            SpecprobeError: xarray is not installed, or a checkpoint's result file is missing or malformed.
        """
        from .dataset import series_dataset

        return series_dataset(self.data, [r.data for r in self.results])


class CouplingResult(_Result):
    """A coupling probe (``coupling.json``): ``plot("coupling")``, its table and Dataset."""

    kind = "coupling"
    file_name = "coupling.json"

    def _figures(self) -> dict:
        from .coupling_report import figure_coupling

        return {"coupling": lambda: figure_coupling(self.data)}

    def table(self) -> Any:
        """The coupling table the CLI prints (each loss band's share landing on its own degrees)."""
        from .coupling_report import coupling_table

        return coupling_table(self.data)

    def to_xarray(self) -> xarray.Dataset:
        """The coupling result as a Dataset.

        Raises:
            SpecprobeError: xarray is not installed.
        """
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

    def table(self, details: bool = False) -> Any:
        """The compact sweep table, trajectory and recommendation, as a rich renderable.

        Args:
            details: True: the full band table instead (default False).

        Returns:
            A rich renderable.
        """
        from .lookahead_report import lookahead_summary, lookahead_table

        return lookahead_table(self.data) if details else lookahead_summary(self.data)

    @property
    def recommendation(self) -> dict:
        """The recommendation block (computed under the default rule for files written before it).

        See :func:`~specprobe.probing.recommend.recommend` for its keys.
        """
        from .lookahead_report import ensure_recommendation

        return ensure_recommendation(self.data)["recommendation"]

    @property
    def sweep(self) -> list[dict]:
        """The compact sweep table's rows: per whitened arm and band, the paired judgement of ES, MSE..."""
        from .lookahead_report import ensure_recommendation

        return ensure_recommendation(self.data)["sweep"]

    def recommend(self, rule: Rule | None = None, **rule_options: Any) -> dict:
        """The recommendation under another rule (``Rule`` or its fields, e.g. ``max_cost=0.01``), from the
        file alone; the stored one is left as it is.

        Args:
            rule: the rule; None (default): a :class:`~specprobe.probing.recommend.Rule` from
                ``rule_options``, with ``k`` from the sweep's settings unless given.
            **rule_options: :class:`~specprobe.probing.recommend.Rule` fields; used only when ``rule`` is None.

        Returns:
            The recommendation block (see :func:`~specprobe.probing.recommend.recommend`).

        Raises:
            ValueError: ``rule_options`` hold an invalid value.
            TypeError: ``rule_options`` name a field Rule does not have.
        """
        from ..probing.recommend import add_recommendation
        from ..probing.recommend import Rule

        if rule is None:
            rule = Rule(**{"k": (self.data.get("settings") or {}).get("k"), **rule_options})
        return add_recommendation(dict(self.data), rule)["recommendation"]

    def to_xarray(self) -> xarray.Dataset:
        """The lookahead as an xarray Dataset.

        Returns:
            Per degree and arm (the checkpoint as ``before_*``): the held-out scores; the sweep's paired
            effects; each arm's rollout series when rolled out.

        Raises:
            SpecprobeError: xarray is not installed.
        """
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


def load_result(
    source: str | os.PathLike[str] | dict | ProbeResult | _Result,
) -> GradByLResult | SweepResult | SeriesResult | CouplingResult | LookaheadResult:
    """A result object for a specprobe JSON file (result/sweep/series/coupling/lookahead), an output directory
    holding one, an in-memory ProbeResult (``specprobe.probe(...)``) or a result dict.

    Args:
        source: a result file; a directory holding exactly one of ``result.json``, ``sweep.json``,
            ``series.json``, ``coupling.json``, ``lookahead.json``; a ProbeResult; a result dict (its
            ``schema`` key picks the kind); or an already loaded result (returned as it is).

    Returns:
        The view of that kind: :class:`GradByLResult`, :class:`SweepResult`, :class:`SeriesResult`,
        :class:`CouplingResult` or :class:`LookaheadResult`.

    Raises:
        SpecprobeError: the file is missing, not JSON or not a specprobe result; the directory holds no or
            several result files; the schema is unknown; or the result lacks required keys.
    """
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
