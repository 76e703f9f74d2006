"""Standard output shared with other writers (a container's log): every write the pipe sees is whole lines.

A pipe keeps one write of at most ``PIPE_BUF`` bytes in one piece whoever
else writes to it (POSIX), but copies a longer one in parts while its reader
lags, and another process's line can land between two parts: inside one of
datagc's lines (measured: a sweep's 35 KiB writes beside a service's short
lines, ~180 lines spliced in 3000). The entrypoint
(contrib/docker-entrypoint.sh) gives the service and ``datagc watch`` one
stdout. So on a pipe datagc's stdout is buffered ``PIPE_BUF`` bytes at a time,
and each line goes to that buffer whole: what is written out is whole lines
(a single line longer than ``PIPE_BUF`` can't be kept whole, and is written on its own).
"""

from __future__ import annotations

import io
import os
import select
import stat
from typing import TextIO


def whole_line_writes(stream: TextIO) -> TextIO:
    """``stream`` itself, or, when it is a pipe, a stream on the same file that writes whole lines at a time
    (``stream`` is flushed first; callers write one line per ``write``, as ``writelines`` does)."""
    try:
        is_pipe = stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):  # no file behind it (io.UnsupportedOperation: a test capturing it in-process)
        return stream
    if not is_pipe:
        return stream
    stream.flush()
    buffered = io.BufferedWriter(io.FileIO(stream.fileno(), "w", closefd=False), buffer_size=select.PIPE_BUF)
    return io.TextIOWrapper(buffered, encoding=stream.encoding, errors=stream.errors, write_through=True)
