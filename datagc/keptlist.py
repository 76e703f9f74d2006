"""What ``--verbose`` adds to a step's kept list: the files a pass left for the ordinary reasons (too
young, protected, not needed), which on a big tree are most of its files.

The list is bounded: the first ``LISTED`` of them by path are listed, each
with its reason; the rest are only counted, by reason. Bounded as it is
collected (never more than twice ``LISTED`` entries held), so a million kept
files cost no more memory than a thousand; first by path, so the list is the
same whether the walk was split across workers or not (each worker keeps its
own first ``LISTED``, which hold the first ``LISTED`` of the whole tree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from datagc.model import Kept, Note

#: kept files listed per step, at most
LISTED = 1000

#: (path, mtime_ns, code): ``code`` is the pass's own small number for the reason
Entry = tuple[str, int, int]


@dataclass
class KeptList:
    """The first ``limit`` kept files by path, and how many more were kept, by reason code."""

    limit: int = LISTED
    entries: list[Entry] = field(default_factory=list)
    unlisted: dict[int, int] = field(default_factory=dict)
    #: once trimmed: a path after this one can't be among the first ``limit``
    cut: str | None = None

    def add(self, path: str, mtime_ns: int, code: int) -> None:
        if self.cut is not None and path > self.cut:
            self.unlisted[code] = self.unlisted.get(code, 0) + 1
            return
        self.entries.append((path, mtime_ns, code))
        if len(self.entries) >= 2 * self.limit:
            self._trim()

    def merge(self, other: KeptList) -> None:
        """Count in ``other`` (another share of the same walk, or another part of the same pass)."""
        for code, count in other.unlisted.items():
            self.unlisted[code] = self.unlisted.get(code, 0) + count
        for path, mtime_ns, code in other.entries:
            self.add(path, mtime_ns, code)

    def _trim(self) -> None:
        self.entries.sort()
        for _, _, code in self.entries[self.limit:]:
            self.unlisted[code] = self.unlisted.get(code, 0) + 1
        del self.entries[self.limit:]
        if len(self.entries) == self.limit:
            self.cut = self.entries[-1][0]

    def settle(
        self, why: Callable[[str, int, int], Note], kind: Callable[[int], str]
    ) -> tuple[list[Kept], dict[str, int]]:
        """The listed files in path order, each with ``why(path, mtime_ns, code)``; the others counted by
        ``kind(code)`` (``too_young``, ``protected``, …)."""
        self._trim()
        listed = [Kept(path, why(path, mtime_ns, code)) for path, mtime_ns, code in self.entries]
        counts: dict[str, int] = {}
        for code, count in sorted(self.unlisted.items()):
            counts[kind(code)] = counts.get(kind(code), 0) + count
        return listed, counts
