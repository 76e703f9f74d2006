"""Suite-wide settings: property tests are reproducible on any clone.

No example database (a counterexample found once must be committed as an
``@example``, not kept in a local ``.hypothesis/``), the same examples on every
run, and no per-example deadline (a loaded machine must not fail a test).
``HYPOTHESIS_PROFILE=explore`` searches with fresh random examples instead, to
look for new counterexamples before committing them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.process_lines import Running

settings.register_profile("reproducible", database=None, derandomize=True, deadline=None)
settings.register_profile("explore", database=None, deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))


@pytest.fixture
def watches() -> Iterator[list[Running]]:
    """Every ``datagc watch`` (or other long-running process) a test starts is killed at its end, whatever happened."""
    started: list[Running] = []
    yield started
    for watch in started:
        watch.close()
