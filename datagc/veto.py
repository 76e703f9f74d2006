"""The one veto (SPEC §7 rule 11): which paths a pass may delete or rotate, decided in one place.

Planners ask it to leave protected files out of their plans; the executor asks
it again for every action it is handed, so a planner that forgets (or a bug
that proposes a product file) is refused where the change would happen.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence

from datagc.config.schema import Config
from datagc.model import Action, Delete, FeedNull, FeedRestore, Note, Rotate, note
from datagc.safety.rewrite import TEMP_MARK

#: state.dir's default, relative to DATA_DIR (SPEC §9)
DEFAULT_STATE_DIR = ".datagc"


def translate(pattern: str) -> str:
    """The regex of an fnmatch pattern (``*`` crosses ``/``), where ``**/`` also stands for no directory at all:
    ``images/**/a.png`` matches ``images/a.png`` too, and ``**/*.key`` a ``a.key`` at the top."""
    if "**/" not in pattern or "\0" in pattern:
        return fnmatch.translate(pattern)
    return fnmatch.translate(pattern.replace("**/", "\0")).replace("\0", "(?:.*/)?")


def pattern_matcher(patterns: Sequence[str]) -> re.Pattern[str]:
    """One regex for a list of fnmatch patterns (case-sensitive, like ``fnmatchcase``); use ``fullmatch``."""
    return re.compile("|".join(f"(?:{translate(pattern)})" for pattern in patterns) or "(?!)")


class Protect:
    """``protect.patterns``: a pattern with ``/`` matches the DATA_DIR-relative path, one without the file name."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        by_name = [pattern for pattern in patterns if "/" not in pattern]
        by_path = [pattern for pattern in patterns if "/" in pattern]
        # asked twice of every file a pass deletes: a kind of pattern the configuration lacks is not asked at all
        self.name_match = pattern_matcher(by_name).fullmatch if by_name else None
        self.path_match = pattern_matcher(by_path).fullmatch if by_path else None

    def __call__(self, path: str) -> bool:
        return ((self.name_match is not None and self.name_match(path[path.rfind("/") + 1:]) is not None)
                or (self.path_match is not None and self.path_match(path) is not None))

    def which(self, path: str) -> str | None:
        """The first pattern that protects ``path`` (for the report), or None."""
        name = path[path.rfind("/") + 1:]
        for pattern in self.patterns:
            if re.fullmatch(translate(pattern), path if "/" in pattern else name):
                return pattern
        return None


def state_dir(config: Config) -> str | None:
    """``state.dir`` relative to DATA_DIR (None when it lies outside it): never a target of any pass."""
    section = getattr(config, "state", None)
    configured = getattr(section, "dir", None) if section is not None else None
    if not configured:
        return DEFAULT_STATE_DIR
    root = os.path.abspath(config.data_dir)
    where = os.path.abspath(os.path.join(root, os.fspath(configured)))
    for base, target in ((root, where), (os.path.realpath(root), os.path.realpath(where))):
        relative = os.path.relpath(target, base)
        if relative == ".":
            return ""
        if not relative.startswith(".."):
            return relative.replace(os.sep, "/")
    return None


def is_normal(path: str) -> bool:
    """A plain relative path: no empty, ``.`` or ``..`` component, no leading or trailing ``/``.

    Asked twice of every file a pass deletes: substring tests, a tenth of the
    equivalent regex search's cost.
    """
    if not path or path[0] == "/" or path[-1] == "/" or "//" in path:
        return False
    wrapped = f"/{path}/"
    return "/./" not in wrapped and "/../" not in wrapped


class Veto:
    """Every rule about what a pass may touch, from the configuration."""

    def __init__(self, config: Config) -> None:
        self.protect = Protect(config.protect.patterns)
        self._media = tuple(f"{directory}/" for directory in config.sweep.media_dirs)
        self._temp = pattern_matcher(config.sweep.temp_patterns).fullmatch
        self._logs = frozenset(config.rotate.logs)
        self._feeds = frozenset(config.feed.files)
        self.state_dir = state_dir(config)
        self._state_prefix = None if self.state_dir is None else (self.state_dir + "/" if self.state_dir else "")

    def refusal(self, action: Action) -> Note | None:
        """Why ``action`` must not be applied, or None when every rule allows it."""
        if isinstance(action, Delete):
            return self.delete_refusal(action.path)
        path = action.path
        if not is_normal(path):
            return note("refused-not-normal", path=path)
        if self.in_state_dir(path):
            return note("refused-state-dir", path=path, state_dir=self.state_dir or ".")
        if isinstance(action, (FeedNull, FeedRestore)):
            return None if path in self._feeds else note("refused-not-a-feed", path=path)
        assert isinstance(action, Rotate)
        if self.protect(path):
            return note("refused-protected", path=path, pattern=self.protect.which(path), kind="rotate")
        return None if path in self._logs else note("refused-not-a-log", path=path)

    def delete_refusal(self, path: str) -> Note | None:
        """Why ``path`` must not be deleted, or None: planners ask it of their candidates, the executor again."""
        if self._may_delete_media(path):
            return None
        return self._delete_refusal(path)

    def _may_delete_media(self, path: str) -> bool:
        """A plain path in a media directory, not protected, not under state.dir: every rule of
        ``_delete_refusal`` in one call (asked twice of every file a pass deletes), or False to ask it."""
        if not path.startswith(self._media) or path[-1] == "/" or "//" in path:
            return False
        if "/." in path and ("/./" in f"{path}/" or "/../" in f"{path}/"):
            return False
        prefix = self._state_prefix
        if prefix is not None and (path.startswith(prefix) or path == self.state_dir):
            return False
        name, by_path = self.protect.name_match, self.protect.path_match
        return ((name is None or name(path[path.rfind("/") + 1:]) is None)
                and (by_path is None or by_path(path) is None)
                and path not in self._logs and path not in self._feeds)

    def _delete_refusal(self, path: str) -> Note | None:
        if not is_normal(path):
            return note("refused-not-normal", path=path)
        if self.in_state_dir(path):
            return note("refused-state-dir", path=path, state_dir=self.state_dir or ".")
        if self.protect(path):
            return note("refused-protected", path=path, pattern=self.protect.which(path), kind="delete")
        if path in self._logs or path in self._feeds:
            return note("refused-product", path=path)
        if not self.may_delete(path):
            return note("refused-out-of-root", path=path)
        return None

    def spares(self, path: str) -> bool:
        """A media file no pass may evict: protected, or under state.dir (pressure's per-file check)."""
        return self.protect(path) or self.in_state_dir(path)

    def in_state_dir(self, path: str) -> bool:
        prefix = self._state_prefix
        return prefix is not None and (path.startswith(prefix) or path == self.state_dir)

    def may_delete(self, path: str) -> bool:
        """Inside a media directory, a top-level temp file, or a leftover temp of datagc's own rewrites."""
        if path.startswith(self._media):
            return True
        directory, _, name = path.rpartition("/")
        if TEMP_MARK in name:
            return self.own_temp(path)
        return not directory and self._temp(name) is not None

    def own_temp(self, path: str) -> bool:
        """``<log or feed>.datagc-tmp.<pid>``: what an interrupted rotation or feed rewrite of datagc leaves."""
        base, mark, pid = path.rpartition(TEMP_MARK)
        return bool(mark) and pid.isdigit() and (base in self._logs or base in self._feeds)
