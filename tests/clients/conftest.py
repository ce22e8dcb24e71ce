"""Fixtures for the client tests (tracker, OpenPanel/Plausible/Umami clients, Python SDK)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clients_support import ScriptedEndpoint, serve_scripted_endpoint


@pytest.fixture
def scripted_endpoint() -> Iterator[ScriptedEndpoint]:
    with serve_scripted_endpoint() as endpoint:
        yield endpoint
