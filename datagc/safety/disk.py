"""Disk usage from statfs."""

from __future__ import annotations

import os

from datagc.facts import DiskUsage


def disk_usage(fd: int) -> DiskUsage:
    """statfs of the filesystem holding ``fd``; OSError propagates (never guessed)."""
    st = os.fstatvfs(fd)
    total = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    available = st.f_bavail * st.f_frsize
    fraction = used / (used + available) if used + available else 0.0
    return DiskUsage(total, used, available, fraction)
