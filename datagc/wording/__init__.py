"""The one place datagc's reports become English (SPEC: passes and the executor carry no sentences).

- :mod:`datagc.wording.sentences`: every note, kept-file reason and failure, by its code (``text``, ``error_text``);
- :mod:`datagc.wording.phrases`: the values and findings inside them (percentages, why a file was chosen, feed
  problems, the CDN's answers, the pressure limits), which the renderers also show on their own.

Callers import from here.
"""

from datagc.wording.phrases import (
    detail_text,
    feed_problem_text,
    limit_crossed,
    limits_with_thresholds,
    percent,
    verdict_text,
)
from datagc.wording.sentences import SENTENCES, error_text, text

__all__ = [
    "SENTENCES",
    "detail_text",
    "error_text",
    "feed_problem_text",
    "limit_crossed",
    "limits_with_thresholds",
    "percent",
    "text",
    "verdict_text",
]
