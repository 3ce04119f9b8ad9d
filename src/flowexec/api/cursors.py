"""Listing cursors as opaque strings: a root's (created_at, id) position, base64url JSON."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from flowexec.errors import ValidationError
from flowexec.model import RootExecution, check_datetime, check_id


def encode_cursor(last: RootExecution) -> str:
    position = [last.execution.created_at.isoformat(), last.execution.id]
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, execution_id = json.loads(raw)
        position = check_datetime(datetime.fromisoformat(created), "cursor")
        return position, check_id(execution_id, "cursor")
    except (ValueError, TypeError, binascii.Error, ValidationError):
        raise ValidationError(
            "cursor is not one this API handed out: pass a page's next_cursor as it is"
        ) from None
