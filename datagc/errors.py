"""Errors a user can cause, each carrying the exit status it ends the run with."""

from __future__ import annotations

from datagc.exitcodes import LOCKED, Exit


class DatagcError(Exception):
    """A failure reported as one message on stderr, never as a traceback."""

    exit_code: int = Exit.STEP_FAILED


class ConfigError(DatagcError):
    """A bad option, environment variable, config file or value: nothing ran."""

    exit_code = Exit.USAGE


class DataDirError(DatagcError):
    """The data directory is missing or unusable: nothing ran."""

    exit_code = Exit.USAGE


class LockHeld(DatagcError):
    """Another datagc is working on this data directory: nothing ran."""

    exit_code = LOCKED
