"""Tests of what only PostgreSQL has: its migrations, plans and server-side behaviour."""

import pytest


@pytest.fixture
def route(request: pytest.FixtureRequest) -> str:
    """PostgreSQL directly, unless a test asks for `pgbouncer` (indirect parametrisation)."""
    return str(getattr(request, "param", "postgres"))
