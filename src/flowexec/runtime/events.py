"""External events: what triggers a child execution (docs/architecture.md §7), as stored and
as flows see them.

In the store an event is a plain dict `{"event_name": ..., "payload": ...}`, the shape the
TypeScript PostgresExecutionStore keeps; flows get a typed `FlowEvent` so that they do not
depend on the storage shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowexec.errors import ValidationError
from flowexec.model import JSON, check_id, check_json


@dataclass(frozen=True, slots=True)
class FlowEvent:
    name: str
    payload: JSON = None

    def to_json(self) -> dict[str, JSON]:
        return {"event_name": self.name, "payload": self.payload}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> FlowEvent:
        """Lenient: rows written by other tools may lack a name or carry more keys."""
        name = value.get("event_name")
        return cls(name=name if isinstance(name, str) else "", payload=value.get("payload"))


def make_event(name: object, payload: object) -> FlowEvent:
    """A checked event: a valid name and a payload that survives JSON."""
    event_name = check_id(name, "event_name")
    check_json(payload, "payload")
    return FlowEvent(event_name, payload)


def parse_events(
    events: Sequence[FlowEvent | Mapping[str, Any]] | None,
) -> list[dict[str, JSON]] | None:
    """Accept FlowEvents or dicts of the stored shape; reject anything else before writing."""
    if events is None:
        return None
    if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Sequence):
        raise ValidationError("events must be a list of events")
    parsed: list[dict[str, JSON]] = []
    for i, event in enumerate(events):
        if isinstance(event, FlowEvent):
            parsed.append(make_event(event.name, event.payload).to_json())
            continue
        if not isinstance(event, Mapping):
            raise ValidationError(
                f"events[{i}] must be a FlowEvent or a dict, not {type(event).__name__}"
            )
        unknown = set(event) - {"event_name", "payload"}
        if unknown:
            raise ValidationError(f"events[{i}] has unknown keys: {sorted(unknown)}")
        if "event_name" not in event:
            raise ValidationError(f"events[{i}] has no event_name")
        parsed.append(make_event(event["event_name"], event.get("payload")).to_json())
    return parsed
