"""Keep fme's import-time notice about an optional HEALPix dependency off the user's terminal.

``import fme`` imports ``fme.ace.models.healpix.healpix_paddings``, which logs the WARNING
"Could not import pad from earth2grid.healpix." when the optional ``earth2grid`` package is absent;
with no logging configured, Python's last-resort handler prints it on stderr. specprobe probes
lat-lon models only, where that padding is never used. The filter drops exactly that record from
exactly that logger; every other record (and every exception) passes.
"""

from __future__ import annotations

import logging

EARTH2GRID_LOGGER = "fme.ace.models.healpix.healpix_paddings"
EARTH2GRID_NOTICE = "Could not import pad from earth2grid.healpix."


class DropEarth2gridNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != EARTH2GRID_NOTICE


def install() -> None:
    """Idempotent; must run before the first ``import fme`` of the process."""
    logger = logging.getLogger(EARTH2GRID_LOGGER)
    if not any(isinstance(f, DropEarth2gridNotice) for f in logger.filters):
        logger.addFilter(DropEarth2gridNotice())
