"""The key rule (singer.keys.parse_key) and where it holds: the request model, the re-key and convert steps."""

from __future__ import annotations

import math

import pytest

from singer.api import CoverRequest
from singer.errors import UsageError
from singer.keys import APPLIED_KEY_LIMIT, KEY_LIMIT, parse_key


@pytest.mark.parametrize(
    "value,expected",
    [
        (None, None),
        ("", None),
        ("  ", None),
        (0, 0.0),
        (-0.0, 0.0),
        ("+2", 2.0),
        (" -3.5 ", -3.5),
        (24, 24.0),
        (-24.0, -24.0),
        ("auto", "auto"),
        ("AUTO", "auto"),
        (" Auto ", "auto"),
        (7, 7.0),
    ],
)
def test_good_keys(value, expected):
    got = parse_key(value)
    assert got == expected and (got is None or isinstance(got, (float, str)))
    if got == 0:
        assert math.copysign(1.0, got) == 1.0  # no -0.0: one cache key for "no shift"


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        "nan",
        "NaN",
        "Infinity",
        "-inf",
        1e308,
        "1e308",
        24.01,
        -25,
        30,
        "30",
        "up",
        "2 semitones",
        True,
        False,
        [2],
        {"k": 1},
        10**400,
    ],
)
def test_bad_keys_name_the_input_and_the_fix(value):
    with pytest.raises(UsageError) as e:
        parse_key(value, "--key")
    assert e.value.user_message.startswith("--key: ") and "-24 to 24" in e.value.hint


def test_limit_and_auto_switches():
    assert parse_key(30, limit=APPLIED_KEY_LIMIT) == 30.0 and APPLIED_KEY_LIMIT > KEY_LIMIT
    with pytest.raises(UsageError):
        parse_key(float("nan"), limit=APPLIED_KEY_LIMIT)
    with pytest.raises(UsageError, match="auto"):
        parse_key("auto", "semitones", allow_auto=False)


@pytest.mark.parametrize("key", [float("nan"), float("inf"), 1e308, 30, -24.5, "sharp"])
def test_cover_request_refuses_bad_keys_with_a_usage_error(key):
    with pytest.raises(UsageError, match="key"):
        CoverRequest(input="song.wav", key=key)


def test_cover_request_reads_keys_and_step_keys_by_the_rule():
    assert CoverRequest(input="x", key="+2").key == 2.0
    assert CoverRequest(input="x", key="auto").key == "auto"
    assert CoverRequest(input="x").key is None
    assert CoverRequest(input="x", step_params={"convert": {"key": "-5"}}).step_params == {"convert": {"key": -5.0}}
    with pytest.raises(UsageError, match="convert.key"):
        CoverRequest(input="x", step_params={"convert": {"key": 30}})


def test_steps_read_keys_by_the_rule(settings):
    from singer.workflow import ops

    shift = ops.get("pitch_shift")
    assert shift.bind(None, {"semitones": "-3"}, None).params == {"semitones": -3.0}
    for bad in (float("nan"), float("inf"), 25, "auto", ""):
        with pytest.raises(UsageError, match="semitones"):
            shift.bind(None, {"semitones": bad}, None)
