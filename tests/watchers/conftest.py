"""Fixtures the polling tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client with a short timeout: the local server answers at once or not at all."""
    async with httpx.AsyncClient(timeout=0.5, follow_redirects=True, max_redirects=5) as c:
        yield c
