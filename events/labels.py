"""Label patterns, in memory: globs (`*`, `?`, `[seq]`), `!` negation, several keys ANDed.

Pure Python, no Django: the filter model's in-memory evaluator and the trigger semantics share it.
`glob_regex` is also what the SQL evaluator sends to PostgreSQL, so both evaluators agree.
"""

from __future__ import annotations

import re
from functools import lru_cache

Patterns = str | list[str]


@lru_cache(maxsize=4096)
def glob_regex(pattern: str) -> str:
    """Translate a glob (`*`, `?`, `[seq]`, `[^seq]`; case-sensitive) to an anchored regex.

    The same semantics as SQLite's GLOB, so the in-memory and SQL evaluators agree.
    """
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
            else:
                body = pattern[i:j]
                negate = body.startswith("^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\")
                out.append(f"[{'^' if negate else ''}{body}]")
                i = j + 1
        else:
            out.append(re.escape(c))
    return "^" + "".join(out) + "$"


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(glob_regex(pattern), re.DOTALL)


def glob_matches(pattern: str, value: str) -> bool:
    return _compiled(pattern).match(value) is not None


def as_list(patterns: Patterns) -> list[str]:
    return [patterns] if isinstance(patterns, str) else list(patterns)


def label_matches(patterns: Patterns, value: str | None) -> bool:
    """Patterns for one label are ORed; `!` negates one; a missing label never matches."""
    if value is None:
        return False
    for pattern in as_list(patterns):
        if pattern.startswith("!"):
            if not glob_matches(pattern[1:], value):
                return True
        elif glob_matches(pattern, value):
            return True
    return False


def labels_match(spec: dict[str, Patterns] | None, labels: dict[str, str]) -> bool:
    """Every label in `spec` must match (AND)."""
    return all(label_matches(patterns, labels.get(key)) for key, patterns in (spec or {}).items())
