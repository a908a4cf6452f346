"""Suggestions for the feed's resource, related and label inputs, from the data itself.

Fast at any size because each answer reads a bounded slice: the newest `SUGGEST_SAMPLE` resource
rows of the window (matched on id and name in memory), plus, when the typed text could be an id
prefix, the distinct ids among the first `ID_SCAN` entries under it of a (resource_id, occurred)
index (`page_queries.resource_ids_starting`). So a resource seen only long ago, among many newer
ones, is found by its id prefix but not by its name.
"""

from __future__ import annotations

from datetime import datetime
from itertools import islice

from events import page_queries, schema

LIMIT = 20
MAX_LABEL = 200
LABELS_PER_RESOURCE = 50
FIELDS = ("resource", "related", "label")


def suggestions(field: str, typed: str, *, since: datetime, until: datetime) -> list[dict]:
    """[{"value", "label"}] for `field` ("resource", "related" or "label") given what was typed."""
    typed = typed.strip()
    if field == "label":
        return _labels(typed, since=since, until=until)
    related = field == "related"
    found: dict[str, dict] = {}
    needle = typed.lower().removesuffix("*")
    for rid, role, labels in page_queries.resource_rows(since=since, until=until, related=related):
        if rid in found:
            continue
        name = schema.resource_name(labels)
        if needle and needle not in rid.lower() and needle not in name.lower():
            continue
        found[rid] = _option(rid, name, role if related else "")
        if len(found) >= LIMIT:
            break
    if typed and len(found) < LIMIT and " " not in typed:
        more = page_queries.resource_ids_starting(
            typed.removesuffix("*"), since=since, until=until, related=related, limit=LIMIT
        )
        missing = [rid for rid in more if rid not in found][: LIMIT - len(found)]
        for rid, labels in page_queries.resource_labels(missing).items():
            found[rid] = _option(rid, schema.resource_name(labels), "")
    return list(found.values())


def _option(rid: str, name: str, role: str) -> dict:
    label = name if name and name != rid else ""
    if role:
        label = f"{role}: {label}" if label else role
    return {"value": rid, "label": label}


def _labels(typed: str, *, since: datetime, until: datetime) -> list[dict]:
    """`key=` while the key is typed, then `key=value` for the values seen with that key."""
    key, sep, value = typed.partition("=")
    key, value = key.strip(), value.strip().lstrip("!")
    counts: dict[str, int] = {}
    for _, _, labels in page_queries.resource_rows(since=since, until=until, related=False):
        # A resource may carry 500 labels; the first ones of each are enough to suggest from.
        for k, v in islice(labels.items(), LABELS_PER_RESOURCE):
            if k == schema.RESOURCE_ID:
                continue
            if len(k) > MAX_LABEL or (isinstance(v, str) and len(v) > MAX_LABEL):
                continue  # a filter nobody types; and it would bloat the list
            if sep:
                if k == key and isinstance(v, str) and value.lower() in v.lower():
                    option = f"{k}={v}"
                    counts[option] = counts.get(option, 0) + 1
            elif key.lower() in k.lower():
                counts[f"{k}="] = counts.get(f"{k}=", 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:LIMIT]
    return [{"value": option, "label": f"seen {n:,}×"} for option, n in ranked]
