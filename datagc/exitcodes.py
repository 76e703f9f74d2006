"""Exit statuses: a bit mask, like fsck's (SPEC §4)."""

from __future__ import annotations

from enum import IntFlag


class Exit(IntFlag):
    """What a pass did, combined with ``|`` across steps."""

    OK = 0
    STEP_FAILED = 1
    USAGE = 2
    ROTATED = 4
    SWEPT = 8
    PRESSURE_DELETED = 16
    STILL_ABOVE_THRESHOLD = 32


#: Another datagc holds the lock on this data directory; nothing ran. Not a bit.
LOCKED = 75
