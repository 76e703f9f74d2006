"""After a rotation's rename: carry what writers still append to the old log into the new one, in order.

Writers that opened the log's path just before the rename append to the old
inode. What it gains is appended to the new log, complete lines in one
``write`` each, until no writer can reach the old inode any more (SPEC §7
rule 5). Two Linux file leases make this exact and keep each writer's order
(rule 15):

- a **write lease on the new log**, taken when its temp file is created
  (while datagc still owns it, so no CAP_LEASE is needed whoever owns the
  log) and held until the old inode's last line is carried over. Any
  ``open()`` of the new log waits in the kernel until then, so no writer's
  next line can get into the new log before its previous line is carried
  there. Writers wait at most ``ORDER_WAIT_S`` (and never longer than
  ``/proc/sys/fs/lease-break-time``, after which the kernel lets them in);
- a **read lease on the old inode**, granted only while no writer has it open.
  A writer that resolved the old path just before the rename and opens it
  now breaks it, so a read lease that stayed unbroken for ``SETTLE_S`` means
  nobody writes there any more. Where it is unavailable (another owner and
  no CAP_LEASE), ``QUIET_S`` without growth, and no process holding it open
  for writing in /proc, is waited for instead.

A writer that still holds the old inode open after ``max_wait`` is given up
on (what it writes later is lost to the new log, and reported) only if it
sleeps: one that is runnable or in disk sleep is an appender mid-append that
a loaded machine is slow to schedule, and is waited for up to ``BUSY_WAIT_S``.

Without the write lease (a filesystem without leases), writers are not held
off: a line appended to the old inode just before the rename can land after
the same writer's next line. The outcome says so (``order_risk``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from datagc.openfiles import Writer

#: Bytes read per step when carrying appended lines over.
CHUNK = 1024 * 1024
#: How long a read lease on the old inode must stay unbroken to be done with it.
SETTLE_S = 0.02
#: Without leases on the old inode: how long it must stop growing to be done with it. Longer, because it must
#: also cover a writer that opened the old path just before the rename and was descheduled before writing.
QUIET_S = 0.1
#: How long writers are held off the new log at most while the old one's late lines are carried over.
ORDER_WAIT_S = 0.5
#: How long to wait at most for writers still holding the old inode open (and asleep: they keep it open for good).
MAX_WAIT_S = 2.0
#: How long to wait at most for a writer that holds the old inode open and is busy (runnable or in disk sleep):
#: an appender mid-append on a loaded machine, whose line would be lost if it were given up on.
BUSY_WAIT_S = 30.0
#: How often, past ``max_wait``, to look again whether the writers holding the old inode are busy (a /proc scan).
BUSY_RECHECK_S = 0.25
#: Without the write lease: how long to wait at most for the new log to end on a line boundary.
LINE_END_WAIT_S = 0.05
_POLL_S = 0.005

#: Why a rotation could not guarantee each writer's order: no lease on the new log here, or a process kept the
#: old log open for writing longer than ``ORDER_WAIT_S`` (writers were let in while its lines were still carried).
OrderRisk = Literal["no-lease", "held-open"]


class NewLogLease:
    """The write lease on the new log: ``take`` it on the temp's fd as soon as it exists, ``release`` when done."""

    def __init__(self) -> None:
        self.fd = -1
        #: why it could not be taken (the filesystem or the kernel refused it)
        self.error: str | None = None
        #: when it was released (``time.monotonic()``), if it was ever held
        self.released_at: float | None = None

    def take(self, fd: int) -> None:
        try:
            # a lease break signals the holder; SIGURG is ignored by default, SIGIO would kill datagc
            fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError as error:
            self.error = error.strerror or str(error)
        else:
            self.fd = fd

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def release(self) -> None:
        """Let the writers waiting to open the new log in (closing the fd would too)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
            self.fd = -1
            self.released_at = time.monotonic()


class Carried(NamedTuple):
    """What the carry-over did (a NamedTuple: a frozen dataclass costs every rotation's start-up ~0.5 ms)."""

    #: the old inode is in the new log up to this offset
    done: int
    #: a writer still held the old inode open after ``max_wait``: what it writes later is not carried over
    lingered: bool
    #: None when every writer's order is kept (the lease held until the end)
    order_risk: OrderRisk | None
    #: a failure while carrying (the rotation itself stands)
    error: str | None
    #: how long writers' appends were held back (from the rename to the lease's release)
    held_s: float


def carry_late_lines(
    src: int, dst: int, dir_fd: int, pos: int, lease: NewLogLease, *, settle: float, max_wait: float,
    order_wait: float,
) -> Carried:
    """Append to ``dst`` (the new log) what ``src`` (the old inode) gains past ``pos`` until no writer holds it.

    Releases ``lease`` once done, or after ``order_wait`` if a writer keeps
    the old inode open for writing (then carrying goes on, up to ``max_wait``).
    The directory ``dir_fd`` is fsynced (the rename made durable) in the
    background meanwhile, the new log again once writers are let in if lines
    were carried into it (it was fsynced before the rename).
    """
    fcntl.fcntl(dst, fcntl.F_SETFL, fcntl.fcntl(dst, fcntl.F_GETFL) | os.O_APPEND)
    started = time.monotonic()  # just after the rename: from now on, opens of the log wait for the lease
    carry = _Carry(src, dst, pos, lease)
    dir_sync = _Fsync(dir_fd)  # overlaps the settle: neither the writers nor the pass wait for it on its own
    lingered = False
    error: str | None = None
    try:
        try:
            try:
                lingered = not _wait_for_writers(carry, settle, max_wait, order_wait)
                carry.pull()
                carry.flush_partial()
            finally:
                lease.release()
            if carry.done > pos:
                os.fsync(dst)
        finally:
            dir_sync.wait()
    except OSError as failure:
        error = failure.strerror or str(failure)
    held = lease.released_at - started if lease.released_at is not None else 0.0
    return Carried(carry.done, lingered, carry.order_risk, error, held)


class _Fsync:
    """``fsync(fd)`` in a thread (the call releases the GIL); :meth:`wait` joins it and raises what it raised."""

    def __init__(self, fd: int) -> None:
        self.error: OSError | None = None
        self.thread = threading.Thread(target=self._run, args=(fd,), name="datagc-fsync", daemon=True)
        self.thread.start()

    def _run(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as error:
            self.error = error

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


class _Carry:
    """Appends what the old inode gains past ``pos`` to the new log, complete lines per ``write``."""

    def __init__(self, src: int, dst: int, pos: int, lease: NewLogLease) -> None:
        self.src = src
        self.dst = dst
        self.lease = lease
        self.pos = pos  # read from the old inode up to here
        self.pending = bytearray()  # read, not yet written: a line still being appended
        self.order_risk: OrderRisk | None = None if lease.held else "no-lease"

    @property
    def done(self) -> int:
        """The old inode is in the new log up to here."""
        return self.pos - len(self.pending)

    def pull(self) -> bool:
        """Carry over the complete lines appended since the last pull; True if the old inode grew."""
        size = os.fstat(self.src).st_size
        grew = size > self.pos
        while self.pos < size:
            data = os.pread(self.src, min(CHUNK, size - self.pos), self.pos)
            if not data:
                break
            self.pos += len(data)
            end = data.rfind(b"\n") + 1
            if end == 0:
                self.pending += data
                continue
            self.pending += data[:end]
            self._write_pending()
            self.pending += data[end:]
        return grew

    def flush_partial(self) -> None:
        """Append a line that stayed incomplete as it is: carried over, never dropped."""
        self._write_pending()

    def let_writers_in(self) -> None:
        """Stop holding writers off although the old inode is still open for writing (after ``ORDER_WAIT_S``)."""
        if self.lease.held:
            self.lease.release()
            self.order_risk = "held-open"

    def _write_pending(self) -> None:
        if not self.pending:
            return
        if not self.lease.held:
            self._wait_for_line_end()
        data = memoryview(bytes(self.pending))
        written = 0
        try:
            while written < len(data):
                written += os.write(self.dst, data[written:])
        finally:
            del self.pending[:written]

    def _wait_for_line_end(self) -> None:
        """Without the lease, writers append to the new log too: wait, briefly, until it ends with a newline.

        The service appends a line in one ``write``, which the kernel never
        interleaves with ours; a writer that spreads a line over several writes
        could otherwise find one of ours inside it. A line that stays torn
        (its writer died) is appended to after ``LINE_END_WAIT_S``, as the
        service's next append would.
        """
        deadline = time.monotonic() + LINE_END_WAIT_S
        while time.monotonic() < deadline:
            size = os.fstat(self.dst).st_size
            if size == 0 or os.pread(self.dst, 1, size - 1) == b"\n":
                return
            time.sleep(_POLL_S / 10)


def _wait_for_writers(carry: _Carry, settle: float, max_wait: float, order_wait: float) -> bool:
    """Carry lines over until no writer holds the old inode; False if one still did after ``max_wait``."""
    start = time.monotonic()
    use_lease = _lease_signal_set(carry.src)
    quiet_since = start
    recheck_at = 0.0  # past max_wait: when to look in /proc again at who holds the old inode
    seen_none = False  # the last look found no writer in /proc
    while True:
        if carry.pull():
            quiet_since = time.monotonic()
        if use_lease:
            quiet = _quiet_under_lease(carry, settle)
            if quiet is None:
                use_lease = False
            elif quiet:
                return True
        elif time.monotonic() - quiet_since >= QUIET_S:
            if not _writers(carry.src):
                return True
            quiet_since = time.monotonic()  # a writer has it open, only slow: look again after another quiet spell
        waited = time.monotonic() - start
        if waited >= order_wait:
            carry.pull()
            carry.let_writers_in()
        if waited >= max_wait and time.monotonic() >= recheck_at:
            writers = _writers(carry.src)
            # none seen: it may have just closed it (the lease tells next round), or be out of sight (twice: give up)
            waiting = any(writer.busy for writer in writers) or not (writers or seen_none)
            if waited >= max(max_wait, BUSY_WAIT_S) or not waiting:
                return False
            seen_none = not writers
            recheck_at = time.monotonic() + BUSY_RECHECK_S
        time.sleep(_POLL_S)


def _writers(fd: int) -> list[Writer]:
    """The processes holding ``fd``'s file open for writing, from /proc (only asked when leases can't tell)."""
    from datagc.openfiles import writers_of  # imported only then: most rotations never need it

    st = os.fstat(fd)
    return writers_of(st.st_dev, st.st_ino)


def _lease_signal_set(fd: int) -> bool:
    """Have a lease break on ``fd`` signal SIGURG (ignored by default) instead of SIGIO (fatal)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
    except OSError:
        return False
    return True


def _quiet_under_lease(carry: _Carry, settle: float) -> bool | None:
    """Whether no writer has the old inode open, held so for ``settle`` seconds; None if leases don't work here.

    A read lease is granted only while nobody has the file open for writing.
    While it is held, a writer that resolved the old path just before the
    rename and opens it now breaks the lease (and waits for its release), so
    a lease still intact after ``settle`` means nobody can write there any more.
    """
    try:
        fcntl.fcntl(carry.src, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as error:
        return False if error.errno == errno.EAGAIN else None
    try:
        time.sleep(settle)
        carry.pull()
        return bool(fcntl.fcntl(carry.src, fcntl.F_GETLEASE) == fcntl.F_RDLCK)
    finally:
        fcntl.fcntl(carry.src, fcntl.F_SETLEASE, fcntl.F_UNLCK)
