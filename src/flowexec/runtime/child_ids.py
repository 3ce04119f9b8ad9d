"""Deterministic child ids, so that a re-run of a parent re-creates (not duplicates) its children.

`store.create` treats the same id with the same content as a no-op; a parent that is retried or
recovered and emits the same events again therefore lands on the children it already made.
"""

from __future__ import annotations

import hashlib
import json

from flowexec.model import crockford_base32


def child_execution_id(parent_id: str, *parts: object) -> str:
    """`EX` + 24 characters of a hash of the parent id and what identifies the emit."""
    material = json.dumps([parent_id, *parts], separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(material.encode()).digest()[:15]
    return "EX" + crockford_base32(int.from_bytes(digest, "big"), 24)


def emit_identity(
    flow_id: str, event_name: str, payload_json: str, occurrence: int
) -> tuple[object, ...]:
    """What names an emit without an explicit key: its content and how often it recurred.

    Content rather than call order, so that nodes emitting concurrently (whose order varies
    between runs) still land on the same children; the occurrence number keeps identical
    emits of one run apart.
    """
    return ("emit", flow_id, event_name, payload_json, occurrence)


def keyed_identity(key: str) -> tuple[object, ...]:
    return ("key", key)
