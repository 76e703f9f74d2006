"""What a pass tells, as a code and its facts: no English here (``wording.text`` makes the sentence).

A module of its own so that audit, whose start-up is timed, says what it
found the way every pass does without importing the run reports' model.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple


class Note(NamedTuple):
    """Something to tell about a step, as a code and its facts (``wording.text`` makes the sentence)."""

    code: str
    fields: Mapping[str, object] = MappingProxyType({})


def note(code: str, **fields: object) -> Note:
    return Note(code, fields)
