"""Every note a pass, the executor or the runner can make has its sentence, and no sentence is unused."""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import get_args

import pytest

from datagc.cdn import Verdict
from datagc.feed.index import FeedProblem, ProblemCode
from datagc.feed.parse import Undecodable
from datagc.model import Detail, Failure, note
from datagc.wording import SENTENCES, detail_text, error_text, feed_problem_text, verdict_text

SOURCE = Path(__file__).resolve().parent.parent / "datagc"


def test_every_note_code_in_the_source_has_a_sentence_and_every_sentence_is_used() -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in SOURCE.rglob("*.py"))
    used = set(re.findall(r"\bnote\(\s*\"([a-z-]+)\"", text))
    assert used, "no note() calls found"
    assert used - SENTENCES.keys() == set()
    assert SENTENCES.keys() - used == set()


# The sentences as the feed module wrote them before its problems became codes: the output must not change.
FEED_PROBLEMS = [
    (FeedProblem("posts.json", "unreadable", errno.ELOOP), "feed posts.json is a symbolic link (not followed)"),
    (FeedProblem("posts.json", "unreadable", errno.EINVAL), "feed posts.json is not a regular file"),
    (FeedProblem("posts.json", "unreadable", errno.EACCES), "feed posts.json cannot be read (Permission denied)"),
    (FeedProblem("a/posts.json", "dir-unopenable", errno.EACCES),
     "feed a/posts.json is in a directory that cannot be opened (Permission denied)"),
    (FeedProblem("posts.json", "undecodable", decoding=Undecodable("not-utf8", "invalid start byte", byte=0)),
     "feed posts.json is not UTF-8 text (invalid start byte at byte 0)"),
    (FeedProblem("posts.json", "undecodable", decoding=Undecodable("not-json", "Expecting value", line=1, column=1)),
     "feed posts.json is not JSON (Expecting value at line 1 column 1)"),
    (FeedProblem("posts.json", "undecodable", decoding=Undecodable("too-deep")),
     "feed posts.json is nested too deeply to parse"),
    (FeedProblem("posts.json", "undecodable", decoding=Undecodable("not-array", found="object")),
     "feed posts.json is not a JSON array (its top level is an object)"),
    (FeedProblem("posts.json", "rewrite-failed", errno.ENOSPC),
     "feed posts.json could not be rewritten (No space left on device); it was left as it was"),
    (FeedProblem("posts.json", "kept-changing", attempts=12, seconds=5.0),
     "feed posts.json kept changing while datagc updated it (12 attempts in 5 s); it was left as the service last "
     "wrote it"),
    (FeedProblem("posts.json", "restore-failed", errno.EROFS),
     "feed posts.json could not be rewritten (Read-only file system) to restore references; it was left as it was"),
    (FeedProblem("posts.json", "restore-kept-changing", attempts=10),
     "feed posts.json kept changing while datagc restored references in it (10 attempts)"),
    (FeedProblem("posts.json", "vanished"), "feed posts.json has vanished"),
]


@pytest.mark.parametrize(("problem", "sentence"), FEED_PROBLEMS)
def test_a_feed_problem_is_said_as_before(problem: FeedProblem, sentence: str) -> None:
    assert feed_problem_text(problem) == sentence


def test_every_feed_problem_code_is_said() -> None:
    assert {problem.code for problem, _ in FEED_PROBLEMS} == set(get_args(ProblemCode))


@pytest.mark.parametrize(("detail", "sentence"), [
    (None, ""),
    (Detail("orphan-temp"), "orphan temp file"),
    (Detail("leftover"), "left by an interrupted datagc"),
    (Detail("on-cdn", verified=True), "on the CDN, verified"),
    (Detail("unreferenced"), "unreferenced"),
    (Detail("referenced"), "referenced by the feed"),
    (Detail("referenced-locally", posts=("p1", "p2")), "referenced locally by p1, p2"),
    (Detail("referenced-locally"), "referenced locally by a post"),
])
def test_a_detail_is_said_as_before(detail: Detail | None, sentence: str) -> None:
    assert detail_text(detail) == sentence


U = "https://cdn.example.com/images/a.png"


@pytest.mark.parametrize(("verdict", "sentence"), [
    (Verdict(True, "same-size", U, 200, 4096, 4096), "the CDN answered 200 with the same 4096 bytes"),
    (Verdict(False, "off-cdn", "https://elsewhere/a.png", public_url=""),
     "https://elsewhere/a.png is not on the CDN that cdn.public_url names (unset); nothing was requested"),
    (Verdict(False, "bad-url", U), f"{U} cannot be requested (it is not valid text); nothing was requested"),
    (Verdict(False, "timed-out", U, seconds=2.5, answered=False),
     f"the CDN did not answer for {U} (no whole answer within 2.5s)"),
    (Verdict(False, "no-answer", U, error="[Errno 111] Connection refused", answered=False),
     f"the CDN did not answer for {U} ([Errno 111] Connection refused)"),
    (Verdict(False, "redirect", U, 302, location="https://evil/"),
     f"the CDN answered 302 for {U}, redirecting to https://evil/; redirects are not followed"),
    (Verdict(False, "status", U, 404), f"the CDN answered 404 for {U}"),
    (Verdict(False, "no-length", U, 200), f"the CDN answered 200 without a usable Content-Length for {U}"),
    (Verdict(False, "size-differs", U, 200, 11, 10), f"the CDN has 11 bytes at {U}, the local copy 10"),
    (Verdict(False, "gave-up", U, unanswered=3, answered=False),
     "not verified: the CDN left 3 requests unanswered, so no more were sent in this pass"),
])
def test_a_cdn_verdict_is_said_as_before(verdict: Verdict, sentence: str) -> None:
    assert verdict_text(verdict) == sentence


@pytest.mark.parametrize(("count", "said"), [(1, ""), (2, " (and 1 more problem)"), (3, " (and 2 more problems)")])
def test_a_step_error_counts_the_problems_it_does_not_name(count: int, said: str) -> None:
    failures = [Failure(note("delete-failed", path=f"images/{n}.png", strerror="Permission denied"), errno.EACCES)
                for n in range(count)]
    first = "could not delete images/0.png (Permission denied); it was left as it was"
    assert error_text(failures, failures[0]) == first + said
