"""Apps for the HTTP tests: ``idle`` accepts jobs and runs none, ``live`` runs them with the embedded worker. Each
test module gives its own ``app_settings``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from singer.http.app import create_app


@pytest.fixture
def idle(app_settings):
    """An app that accepts jobs but runs none (the worker is off)."""
    with TestClient(create_app(app_settings, run_worker=False)) as client:
        yield client


@pytest.fixture
def live(app_settings):
    with TestClient(create_app(app_settings)) as client:
        yield client
