"""The runtime tests run through a transaction pooler too (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import POOLED_ROUTES


@pytest.fixture(params=POOLED_ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)
