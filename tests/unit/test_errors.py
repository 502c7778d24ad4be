"""One error-to-dict builder for every layer (CLI --json, HTTP bodies, job records, run.json)."""

from __future__ import annotations

import json

import pytest

from singer.errors import EngineUnavailable, InputError, SingerError, UsageError, error_dict
from tests.clirun import as_json, invoke


def test_singer_errors_keep_code_message_hint_and_reasons():
    assert error_dict(UsageError("Bad --key", hint="Use -24..24.")) == {
        "error": "usage",
        "message": "Bad --key",
        "hint": "Use -24..24.",
    }
    assert error_dict(InputError("No song")) == {"error": "bad_input", "message": "No song", "hint": ""}
    e = EngineUnavailable("No separator works.", hint="Install one.", reasons={"uvr": "no model", "spleeter": "gone"})
    assert error_dict(e) == {
        "error": "engine_unavailable",
        "message": "No separator works.",
        "hint": "Install one.",
        "reasons": {"uvr": "no model", "spleeter": "gone"},
    }
    assert e.to_dict() == error_dict(e)
    assert "reasons" not in error_dict(EngineUnavailable("x"))


@pytest.mark.parametrize("exc", [KeyError("/srv/secret/path"), ValueError("token=abc /home/x"), RuntimeError("")])
def test_other_exceptions_are_internal_errors_without_their_text(exc):
    d = error_dict(exc)
    assert d["error"] == "internal_error" and type(exc).__name__ in d["message"] and d["hint"]
    assert "secret" not in json.dumps(d) and "token" not in json.dumps(d) and "/home" not in json.dumps(d)


def test_the_job_worker_and_the_cli_share_the_builder():
    from singer.jobs import execute

    assert execute.error_dict is error_dict


def test_cli_internal_error_is_the_same_dict(settings, monkeypatch):
    from singer.api import Singer

    def boom(self):
        raise OSError("/very/secret/place")

    monkeypatch.setattr(Singer, "engines", boom)
    monkeypatch.delenv("SINGER_DEBUG", raising=False)
    res = invoke("engines", "--json")
    assert res.exit_code == 1
    data = as_json(res)
    assert data == {"ok": False, **error_dict(OSError("x"))} and "secret" not in res.stdout


def test_cli_json_keeps_the_reasons_of_an_engine_error(settings, monkeypatch):
    from singer.api import Singer

    def unavailable(self):
        raise EngineUnavailable("Nothing works.", reasons={"a": "why a", "b": "why b"})

    monkeypatch.setattr(Singer, "engines", unavailable)
    res = invoke("engines", "--json")
    assert res.exit_code == 4 and as_json(res)["reasons"] == {"a": "why a", "b": "why b"}
    res = invoke("engines")
    assert "why a" in res.stderr and "why b" in res.stderr


def test_base_class_code():
    assert error_dict(SingerError("x"))["error"] == "internal_error"
