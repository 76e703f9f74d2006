"""Which files on DATA_DIR's filesystem some process holds open, from /proc (once per pass).

Unlinking a file that a process holds open frees nothing until the process
closes it, so pressure keeps such a file and takes the next candidate. Files
are matched by (device, inode), not by path: a container and the host see the
same file under different paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Holder:
    """A process holding a file open."""

    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


@dataclass
class OpenFiles:
    """Open regular files on one filesystem, by (device, inode), with the first process found holding each."""

    holders: dict[tuple[int, int], Holder] = field(default_factory=dict)
    #: processes whose descriptors could not be read (another user's, without root)
    unreadable: int = 0
    #: /proc itself could not be listed: nothing is known
    unavailable: bool = False

    def get(self, dev: int, ino: int) -> Holder | None:
        return self.holders.get((dev, ino))


def scan(dev: int) -> OpenFiles:
    """Every file on device ``dev`` that some process has open (this process excluded)."""
    found = OpenFiles()
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        found.unavailable = True
        return found
    me = os.getpid()
    for pid in pids:
        if pid == me:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except FileNotFoundError:
            continue  # the process ended meanwhile
        except OSError:
            found.unreadable += 1
            continue
        for fd in fds:
            try:
                if not os.readlink(f"{fd_dir}/{fd}").startswith("/"):
                    continue  # a pipe, a socket, an anonymous inode
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if st.st_dev == dev and (dev, st.st_ino) not in found.holders:
                found.holders[(dev, st.st_ino)] = Holder(pid, command(pid))
    return found


def command(pid: int) -> str:
    """The process's command name (``/proc/PID/comm``), ``?`` when it can't be read."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return "?"


@dataclass(frozen=True, slots=True)
class Writer:
    """A process holding a file open for writing."""

    holder: Holder
    #: a thread of it is runnable or in disk sleep: working on its append, only slow to be scheduled (a loaded
    #: machine) or to reach the disk; one that holds the file and sleeps may keep it open for good
    busy: bool


def writers_of(dev: int, ino: int) -> list[Writer]:
    """The processes (this one excepted) that hold the file ``(dev, ino)`` open for writing.

    Processes this one can't see (another PID namespace, another user's
    without root) are not found.
    """
    me = os.getpid()
    return [Writer(Holder(pid, command(pid)), _running(pid)) for pid in _pids()
            if pid != me and _writes_to(pid, dev, ino)]


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _writes_to(pid: int, dev: int, ino: int) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            if not os.readlink(f"{fd_dir}/{fd}").startswith("/"):
                continue
            st = os.stat(f"{fd_dir}/{fd}")
            if (st.st_dev, st.st_ino) != (dev, ino):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                flags = int(next((line.split()[1] for line in info if line.startswith("flags:")), "0"), 8)
        except (OSError, ValueError, IndexError):
            continue
        if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
            return True
    return False


def _running(pid: int) -> bool:
    """Whether a thread of ``pid`` is runnable (R) or in uninterruptible sleep (D)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="utf-8", errors="replace") as handle:
                state = handle.read().rpartition(")")[2].split()[:1]
        except OSError:
            continue
        if state and state[0] in ("R", "D"):
            return True
    return False
