"""Tests of what only PostgreSQL has: its migrations, plans and server-side behaviour."""

import pytest


@pytest.fixture
def backend() -> str:
    return "postgres"
