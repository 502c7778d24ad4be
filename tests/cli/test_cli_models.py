"""`singer models list | pull | verify` through Typer's CliRunner, downloads from a loopback server."""

from __future__ import annotations

import hashlib

import pytest

from tests import media
from tests.clirun import as_json, invoke

DATA = bytes(range(256)) * 16


@pytest.fixture
def www(tmp_path):
    folder = tmp_path / "www"
    folder.mkdir()
    (folder / "voice-model.pth").write_bytes(DATA)
    with media.serve_folder(folder) as base:
        yield base


def test_models_list_json(settings):
    res = invoke("models", "list", "--json")
    assert res.exit_code == 0, res.stdout
    models = {m["name"]: m for m in as_json(res)["models"]}
    assert models["hubert"]["state"] == "missing" and not models["hubert"]["present"]
    assert models["hubert"]["kind"] == "content" and models["hubert"]["licence"]
    assert models["rmvpe"]["path"] == str(settings.models_path / "rmvpe.pt")
    assert models["spleeter-2stems"]["state"] == "present" and models["spleeter-2stems"]["licence"]
    pitch = as_json(invoke("models", "list", "--kind", "pitch", "--json"))["models"]
    assert [m["name"] for m in pitch] == ["rmvpe"]
    assert invoke("models", "list", "--kind", "nope").exit_code == 2
    assert invoke("models", "list").exit_code == 0


def test_models_pull_verify_from_loopback(settings, www, monkeypatch):
    url = f"{www}/voice-model.pth"
    refused = invoke("models", "pull", url, "--json")
    assert refused.exit_code == 3 and "SINGER_ALLOW_PRIVATE_URLS" in as_json(refused)["hint"]

    monkeypatch.setenv("SINGER_ALLOW_PRIVATE_URLS", "1")
    res = invoke("models", "pull", url, "--json")
    assert res.exit_code == 0, res.stdout
    data = as_json(res)
    path = settings.models_path / "downloads" / "voice-model.pth"
    assert data["path"] == str(path) and path.read_bytes() == DATA
    assert data["files"] == [{"file": "downloads/voice-model.pth", "sha256": hashlib.sha256(DATA).hexdigest()}]
    assert hashlib.sha256(DATA).hexdigest() in invoke("models", "pull", url).stdout  # already here: prints the hash

    listed = {m["name"]: m for m in as_json(invoke("models", "list", "--json"))["models"]}
    assert listed["downloads/voice-model.pth"]["state"] == "present"
    ok = invoke("models", "verify", "downloads/voice-model.pth", "--json")
    assert ok.exit_code == 0 and as_json(ok)["files"][0]["status"] == "present"

    path.write_bytes(DATA[::-1])
    bad = invoke("models", "verify", "--json")
    assert bad.exit_code == 4
    err = as_json(bad)
    assert not err["ok"] and err["error"] == "model_error" and "corrupt" in err["reasons"]["downloads/voice-model.pth"]


def test_models_pull_wrong_sha256_exit_4(settings, www, monkeypatch):
    monkeypatch.setenv("SINGER_ALLOW_PRIVATE_URLS", "1")
    res = invoke("models", "pull", f"{www}/voice-model.pth", "--sha256", "ab" * 32, "--json")
    assert res.exit_code == 4 and "expected sha256 " + "ab" * 32 in as_json(res)["message"]
    assert not (settings.models_path / "downloads" / "voice-model.pth").exists()
    assert invoke("models", "pull", f"{www}/voice-model.pth", "--sha256", "xyz").exit_code == 2


def test_models_verify_named_missing_model_fails(settings):
    res = invoke("models", "verify", "rmvpe", "--json")
    assert res.exit_code == 4 and as_json(res)["reasons"] == {"rmvpe.pt": "missing"}
    assert invoke("models", "pull", "no-such-model").exit_code == 3
