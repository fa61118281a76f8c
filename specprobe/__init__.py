"""specprobe: how the spectral energy score's gradients reach each spherical-harmonic degree.

The top-level package stays light (no torch import) so the CLI starts instantly. The engine lives in
``specprobe.probing``; no subpackage or module is named like a top-level function, so importing one
can never rebind ``specprobe.probe`` (it did once: the second call hit a module).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .probing.result import ProbeResult


def probe(checkpoint: str | os.PathLike[str] | None = None, **kwargs: Any) -> ProbeResult:
    """Run the per-degree gradient probe on one checkpoint (baseline and whitened energy score).

    Args:
        checkpoint: a file, ``bundled[:NAME]``, or None (the bundled shallow-water SFNO).
        **kwargs: settings and options of :func:`specprobe.probing.api.probe` (``variants``, ``n_samples``,
            ``n_ensemble``, ``data``, ``device``, ... or ``settings=ProbeSettings(...)``,
            ``options=LoadOptions(...)``).

    Returns:
        The :class:`~specprobe.probing.result.ProbeResult`; :func:`load_result` turns it into tables and figures.
    """
    from .probing.api import probe as _probe

    return _probe(checkpoint, **kwargs)


def load_result(source: Any):
    """Any specprobe result as an object with ``plot(name)``, ``table()`` and ``to_xarray()``.

    Args:
        source: a JSON file specprobe wrote (``result.json``, ``sweep.json``, ``series.json``,
            ``coupling.json``, ``lookahead.json``), an ``--out`` directory holding one, a
            :class:`~specprobe.probing.result.ProbeResult` or a result dict.

    Returns:
        The result view of its kind (:mod:`specprobe.report.results`).
    """
    from .report.results import load_result as _load_result

    return _load_result(source)


__all__ = ["__version__", "load_result", "probe"]
