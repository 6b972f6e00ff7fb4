"""The text log line every clawbeat process writes: UTC time to the millisecond, level, logger.

``2026-12-03 15:31:29.593Z INFO    clawbeat.simulate: ...``. The monitor, the device
command and the simulator share it, so their logs read (and sort, and merge) as one.
"""

from __future__ import annotations

import logging
import time
from typing import Final

TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class UtcTextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT` with UTC timestamps (``Z``), whatever the machine's time zone."""

    converter = staticmethod(time.gmtime)
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
