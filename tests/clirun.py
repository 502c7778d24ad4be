"""Running the CLI in tests: Typer's CliRunner, and the one JSON object a ``--json`` command prints."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from singer.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def as_json(res):
    lines = [ln for ln in res.stdout.splitlines() if ln.strip().startswith("{")]
    assert lines, res.stdout + res.stderr
    return json.loads(lines[-1])
