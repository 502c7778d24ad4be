"""Batch outputs: one name per input (x.aac and x.wma -> x.ogg and x-2.ogg, the same on every rerun), the CLI and
the HTTP batches planned by one function; a summary CSV a spreadsheet opens without running formulas; a bad
shared request refused before any file runs."""

from __future__ import annotations

import csv
import json

import pytest

from singer.batch import Item, csv_cell, plan_outputs, write_summary
from tests import media
from tests.clirun import as_json, invoke


def test_plan_outputs_unique_deterministic_and_order_independent():
    pairs = [
        ("x.wma", "ogg"),
        ("x.aac", "ogg"),
        ("sub/x.wav", "ogg"),
        ("X.flac", "ogg"),
        ("x-2.ogg", "ogg"),
        ("y.wav", "wav"),
    ]
    outs = plan_outputs(pairs)
    assert len({o.lower() for o in outs}) == len(outs)  # unique, even where case folds
    assert dict(zip([p for p, _ in pairs], outs)) == {
        "X.flac": "X.ogg",
        "sub/x.wav": "sub/x.ogg",
        "x-2.ogg": "x-2.ogg",
        "x.aac": "x-3.ogg",
        "x.wma": "x-4.ogg",
        "y.wav": "y.wav",
    }
    assert plan_outputs(list(reversed(pairs))) == list(reversed(outs))  # the inputs' order does not matter
    assert plan_outputs([("x.aac", "ogg"), ("x.wma", "ogg")]) == ["x.ogg", "x-2.ogg"]
    assert plan_outputs([("a.wav", "m4a")]) == ["a.m4a"] and plan_outputs([]) == []


def test_http_batches_plan_with_the_same_function():
    import singer.http.batches as hb
    from singer.batch import plan

    assert hb.plan is plan and not hasattr(hb, "_unique")


def test_batch_of_same_named_inputs_keeps_every_output_and_reruns_nothing(settings, tmp_path):
    src, out = tmp_path / "notes", tmp_path / "out"
    src.mkdir()
    media.voice_wav(src / "x.wav", seconds=1.0, seed=1)
    media.encoded(media.voice_wav(tmp_path / "b.wav", seconds=1.0, seed=2), src / "x.flac", "flac")
    res = invoke("batch", src, "--voice", "ayana", "--out", out, "--format", "ogg", "--workers", "1", "--json")
    summary = as_json(res)
    assert res.exit_code == 0 and summary["done"] == 2, res.stdout
    outputs = {i["rel"]: i["output"] for i in summary["items"]}
    assert outputs == {"x.flac": str(out / "x.ogg"), "x.wav": str(out / "x-2.ogg")}
    assert (out / "x.ogg").is_file() and (out / "x-2.ogg").is_file()
    again = as_json(invoke("batch", src, "--voice", "ayana", "--out", out, "--format", "ogg", "--json"))
    assert (again["skipped"], again["done"]) == (2, 0)  # every rerun maps each input to the same output
    assert {i["rel"]: i["output"] for i in again["items"]} == outputs


@pytest.mark.parametrize(
    "args,words",
    [
        (["--key", "nan"], "--key"),
        (["--key", "30"], "--key"),
        (["--voice", "nobody"], "nobody"),
        (["--format", "exe"], "format"),
    ],
)
def test_a_bad_batch_request_fails_before_any_file(settings, tmp_path, args, words):
    src = tmp_path / "notes"
    src.mkdir()
    media.voice_wav(src / "a.wav", seconds=0.5)
    res = invoke("batch", src, "--out", tmp_path / "out", "--json", *args)
    data = as_json(res)
    assert res.exit_code in (2, 3) and not data["ok"] and words in data["message"], data
    assert not (tmp_path / "out" / "batch-summary.json").exists()


@pytest.mark.parametrize("cell", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_summary_csv_cells_never_start_a_formula(tmp_path, cell):
    item = Item(rel=f"{cell}.ogg", status="failed", message=cell, seconds=1.5, duration=-0.0)
    write_summary(tmp_path, {"items": [item.__dict__]})
    (row,) = list(csv.DictReader(open(tmp_path / "batch-summary.csv", newline="")))
    assert row["rel"] == f"'{cell}.ogg" and row["message"] == f"'{cell}"
    assert row["seconds"] == "1.5" and row["status"] == "failed"
    assert json.loads((tmp_path / "batch-summary.json").read_text())["items"][0]["message"] == cell  # JSON as is
    assert csv_cell("plain") == "plain" and csv_cell(3.0) == 3.0 and csv_cell("") == ""
