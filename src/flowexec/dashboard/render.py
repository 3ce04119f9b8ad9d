"""HTML out: Jinja2 templates from the package, and the headers every dashboard page carries.

Jinja2 rather than hand-built strings because it escapes every value by default; it is what
FastAPI's own template support uses. Every response gets a Content-Security-Policy that allows
scripts, styles and connections from this origin only, so no inline script can run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from flowexec.model import ExecutionStatus

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

STATUS_LABELS = {
    ExecutionStatus.CREATED: "queued",
    ExecutionStatus.RUNNING: "running",
    ExecutionStatus.PAUSED: "paused",
    ExecutionStatus.COMPLETED: "completed",
    ExecutionStatus.FAILED: "failed",
    ExecutionStatus.STOPPED: "stopped",
}


def human_duration(value: timedelta | float | None) -> str:
    """'850 ms', '4.2 s', '3 min 12 s', '2 h 5 min', '3 d 4 h'; '' for none."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60)):
        if whole >= size:
            return f"{whole // size} {unit} {whole % size // sub_size} {sub}"
    return f"{whole // 60} min {whole % 60} s"


def span(start: datetime | None, end: datetime | None) -> str:
    """How long from `start` to `end`; '' unless both are known."""
    return "" if start is None or end is None else human_duration(end - start)


def iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


_env = Environment(
    loader=PackageLoader("flowexec.dashboard", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(duration=human_duration, iso=iso)
_env.globals.update(span=span, status_labels=STATUS_LABELS)


def page(name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    html = _env.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def redirect(url: str) -> Response:
    """A 303 after a form POST, so a reload does not post again."""
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
