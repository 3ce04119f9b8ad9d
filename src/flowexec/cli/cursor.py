"""The `ls` page cursor: an opaque string for the position (created_at, id) of a page's last row.

Paging on the pair, not on the timestamp alone, is what keeps pages free of gaps and
duplicates when several roots share a `created_at`. The listing's scope travels along (the
flow id, or `status=failed` / `status=failed,flow=checkout` for `ls --status`), so that a cursor
handed to another listing is refused instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from flowexec.cli.session import UsageError
from flowexec.model import RootExecution, check_id

_VERSION = 1


@dataclass(frozen=True, slots=True)
class PageCursor:
    flow_id: str
    created_at: datetime
    execution_id: str

    def encode(self) -> str:
        payload = {
            "v": _VERSION,
            "f": self.flow_id,
            "t": self.created_at.isoformat(),
            "i": self.execution_id,
        }
        raw = json.dumps(payload, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def after(cls, root: RootExecution, scope: str | None = None) -> PageCursor:
        """The position after `root`, in the listing `scope` (default: its flow's)."""
        execution = root.execution
        return cls(scope or execution.flow_id, execution.created_at, execution.id)

    @classmethod
    def decode(cls, text: str, flow_id: str) -> PageCursor:
        """Parse a cursor printed by `flowexec ls`; refuse anything else with a clear message."""
        bad = UsageError(f"--after {text!r} is not a cursor printed by `flowexec ls`")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            payload = json.loads(raw)
            if not isinstance(payload, dict) or payload.get("v") != _VERSION:
                raise bad
            if not isinstance(payload["f"], str):
                raise bad
            cursor = cls(
                payload["f"],
                datetime.fromisoformat(payload["t"]),
                check_id(payload["i"], "id"),
            )
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise bad from None
        if cursor.created_at.tzinfo is None:
            raise bad
        if cursor.flow_id != flow_id:
            raise UsageError(
                f"--after is a cursor for flow {cursor.flow_id!r}, not for {flow_id!r}"
                if "=" not in cursor.flow_id + flow_id
                else f"--after is a cursor for the listing {cursor.flow_id!r}, not {flow_id!r}"
            )
        return cursor

    def as_position(self) -> tuple[datetime, str]:
        return self.created_at, self.execution_id
