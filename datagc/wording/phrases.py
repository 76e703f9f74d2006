"""How values and findings are said inside sentences: percentages, why a file was chosen, feed problems,
the CDN's answers, where the pressure limits stand.

The pieces :mod:`datagc.wording.sentences` builds notes from, and that the
renderers show on their own (a deletion's ``why``, the limits in a status line).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from datagc.units import shown_size as _size

if TYPE_CHECKING:  # annotations only: audit never imports the run reports' model (its start-up is timed)
    from datagc.cdn import Verdict
    from datagc.feed.index import FeedProblem
    from datagc.feed.parse import Undecodable
    from datagc.limits import Limit
    from datagc.model import Detail


def percent(fraction: float, exact: bool = False) -> str:
    """``73.1%``; ``exact`` for configured values: ``70%``, ``65.5%``."""
    if exact:
        return f"{fraction * 100:.6f}".rstrip("0").rstrip(".") + "%"
    return f"{fraction * 100:.1f}%"



# --- why a file was chosen (``Delete.detail``) -----------------------------------

_DETAILS = {
    "orphan-temp": "orphan temp file",
    "leftover": "left by an interrupted datagc",
    "on-cdn": "on the CDN",
    "unreferenced": "unreferenced",
    "referenced": "referenced by the feed",
}


def referrers(posts: Sequence[str]) -> str:
    """The posts naming a file: ``p1, p2``; ``a post`` when none has an id."""
    return ", ".join(posts) if posts else "a post"


def detail_text(detail: Detail | None) -> str:
    """``on the CDN, verified``, ``referenced locally by p1, p2``; empty without a detail."""
    if detail is None:
        return ""
    if detail.code == "referenced-locally":
        said = f"referenced locally by {referrers(detail.posts)}"
    else:
        said = _DETAILS[detail.code]
    return f"{said}, verified" if detail.verified else said


# --- feed problems (``datagc.feed``) -----------------------------------------------

_JSON_TYPES = {"object": "an object", "string": "a string", "null": "null", "boolean": "a boolean",
               "number": "a number"}


def _undecodable(why: Undecodable) -> str:
    if why.code == "not-utf8":
        return f"is not UTF-8 text ({why.reason} at byte {why.byte})"
    if why.code == "not-json":
        return f"is not JSON ({why.reason} at line {why.line} column {why.column})"
    if why.code == "too-deep":
        return "is nested too deeply to parse"
    return f"is not a JSON array (its top level is {_JSON_TYPES[why.found]})"


def strerror_text(code: int | None) -> str:
    return os.strerror(code) if code is not None else "unknown error"


def feed_problem_text(problem: FeedProblem) -> str:
    """``feed posts.json is not JSON (Expecting value at line 1 column 1)``, ``feed posts.json cannot be read (…)``."""
    code = problem.code
    if code == "unreadable":
        if problem.errno == errno.ELOOP:
            said = "is a symbolic link (not followed)"
        elif problem.errno == errno.EINVAL:
            said = "is not a regular file"
        else:
            said = f"cannot be read ({strerror_text(problem.errno)})"
    elif code == "dir-unopenable":
        said = f"is in a directory that cannot be opened ({strerror_text(problem.errno)})"
    elif code == "undecodable":
        said = _undecodable(problem.decoding) if problem.decoding is not None else "is not JSON"
    elif code == "rewrite-failed":
        said = f"could not be rewritten ({strerror_text(problem.errno)}); it was left as it was"
    elif code == "kept-changing":
        said = (f"kept changing while datagc updated it ({problem.attempts} attempts in {problem.seconds:g} s); "
                "it was left as the service last wrote it")
    elif code == "restore-failed":
        said = f"could not be rewritten ({strerror_text(problem.errno)}) to restore references; it was left as it was"
    elif code == "restore-kept-changing":
        said = f"kept changing while datagc restored references in it ({problem.attempts} attempts)"
    else:
        said = "has vanished"
    return f"feed {problem.path} {said}"



# --- the CDN's answers (``cdn.verify``) ---------------------------------------------


def verdict_text(verdict: Verdict) -> str:
    """``the CDN answered 404 for https://…``, ``the CDN answered 200 with the same 4096 bytes``."""
    url, code = verdict.url, verdict.code
    if code == "same-size":
        return f"the CDN answered 200 with the same {verdict.local_size} bytes"
    if code == "off-cdn":
        return (f"{url} is not on the CDN that cdn.public_url names ({verdict.public_url or 'unset'}); "
                "nothing was requested")
    if code == "bad-url":
        return f"{url} cannot be requested (it is not valid text); nothing was requested"
    if code == "timed-out":
        return f"the CDN did not answer for {url} (no whole answer within {verdict.seconds:g}s)"
    if code == "no-answer":
        return f"the CDN did not answer for {url} ({verdict.error})"
    if code == "redirect":
        return (f"the CDN answered {verdict.status} for {url}, redirecting to {verdict.location}; "
                "redirects are not followed")
    if code == "status":
        return f"the CDN answered {verdict.status} for {url}"
    if code == "no-length":
        return f"the CDN answered 200 without a usable Content-Length for {url}"
    if code == "size-differs":
        return f"the CDN has {verdict.length} bytes at {url}, the local copy {verdict.local_size}"
    return f"not verified: the CDN left {verdict.unanswered} requests unanswered, so no more were sent in this pass"


# --- the pressure limits (datagc.limits) ----------------------------------------


def limit_value(limit: Limit) -> str:
    """Where a limit stands: ``73.1% used``, ``budget 91.0% (9.1GB of 10GB)``, ``2.0MB free``, ``inodes 3.1% used``."""
    if limit.name == "disk":
        return f"{percent(limit.value)} used"
    if limit.name == "budget":
        return f"budget {percent(limit.value)} ({_size(limit.amount or 0)} of {_size(limit.capacity or 0)})"
    if limit.name == "min_free":
        return f"{_size(int(limit.value))} free"
    return f"inodes {percent(limit.value)} used"


def _bound(limit: Limit, bound: float) -> str:
    return _size(int(bound)) if limit.name == "min_free" else percent(bound, exact=True)


def limit_crossed(limit: Limit) -> str:
    """A crossed limit: ``73.1% used > 70%``, ``1.9MB free < min_free 2.1MB``."""
    if limit.name == "min_free":
        return f"{limit_value(limit)} < min_free {_bound(limit, limit.threshold)}"
    return f"{limit_value(limit)} > {_bound(limit, limit.threshold)}"


def limit_target(limit: Limit) -> str:
    """``the target 60%``, ``the budget target 60%``, ``min_free_target 3.1MB``, ``the inode target 90%``."""
    if limit.name == "min_free":
        return f"min_free_target {_bound(limit, limit.target)}"
    label = {"disk": "the target", "budget": "the budget target", "inodes": "the inode target"}[limit.name]
    return f"{label} {_bound(limit, limit.target)}"


def limits_with_thresholds(limits: Sequence[Limit]) -> str:
    """Every limit with its threshold: ``12.0% used, threshold 70%; inodes 3.1% used, threshold 95%``."""
    return "; ".join(f"{limit_value(limit)}, {'min_free' if limit.name == 'min_free' else 'threshold'} "
                     f"{_bound(limit, limit.threshold)}" for limit in limits)

