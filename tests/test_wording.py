"""Every note a pass, the executor or the runner can make has its sentence, and no sentence is unused."""

from __future__ import annotations

import re
from pathlib import Path

from datagc.wording import SENTENCES

SOURCE = Path(__file__).resolve().parent.parent / "datagc"


def test_every_note_code_in_the_source_has_a_sentence_and_every_sentence_is_used() -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in SOURCE.rglob("*.py"))
    used = set(re.findall(r"\bnote\(\s*\"([a-z-]+)\"", text))
    assert used, "no note() calls found"
    assert used - SENTENCES.keys() == set()
    assert SENTENCES.keys() - used == set()
