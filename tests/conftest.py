from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings with every folder inside tmp_path; no user state leaks in or out."""
    from singer.config import Settings

    for var in ("SINGER_LIBRARY", "SINGER_MODELS_DIR", "SINGER_CACHE_DIR", "SINGER_WORKFLOWS_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SINGER_HOME", str(tmp_path / "home"))
    return Settings(home=tmp_path / "home")
