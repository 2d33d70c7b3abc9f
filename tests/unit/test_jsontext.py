"""nsinit.jsontext against the json package: same text out, same values and errors in."""
from __future__ import annotations

import json
import math

import pytest

from nsinit import jsontext

VALUES = [
    {},
    [],
    {"a": [], "b": {}, "c": [{}], "d": [[]]},
    {"z": 1, "a": 2, "m": {"y": True, "b": False, "n": None}},
    ["é", "\u2603 snow", "tab\tnew\nline", "quote\" back\\slash", "\x00\x1f", "\ud83d\ude00", ""],
    [0, -1, 2 ** 70, 1.5, -0.0, 1e300, 3.141592653589793, float("inf"), float("-inf")],
    (1, (2, 3), []),
    {"state": {"init_pid": 123, "namespace_paths": {"NEWNET": "/proc/123/ns/net"},
               "network_state": [{"host": "veth1234567", "index": 7}], "config": {"mounts": [{"flags": ["rbind", 64]}]}}},
    "just a string",
    42,
    None,
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("indent", [None, 2, 4])
@pytest.mark.parametrize("sort_keys", [False, True])
def test_dumps_writes_what_json_writes(value: object, indent: int | None, sort_keys: bool) -> None:
    assert jsontext.dumps(value, indent=indent, sort_keys=sort_keys) == json.dumps(value, indent=indent,
                                                                                     sort_keys=sort_keys)


@pytest.mark.parametrize("indent", [None, 2])
def test_dumps_writes_non_string_keys_as_json_does(indent: int | None) -> None:
    # Unsorted only: json cannot sort keys of mixed types either.
    value = {1: "int key", 2.5: "float key", False: "bool key", None: "none key"}
    assert jsontext.dumps(value, indent=indent) == json.dumps(value, indent=indent)


def test_dumps_writes_nan_as_json_does() -> None:
    assert jsontext.dumps([float("nan")]) == json.dumps([float("nan")]) == "[NaN]"


@pytest.mark.parametrize("value", [object(), {("tuple", "key"): 1}, {"a": {1, 2}}])
def test_dumps_refuses_what_json_refuses(value: object) -> None:
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        jsontext.dumps(value)


DOCUMENTS = [
    '{"a": 1}', ' \n\t{"a" : [1, 2.5e3, -0, "x\\u00e9\\n"], "b": {"c": null, "d": true, "e": false}}\r\n',
    "[]", "{}", '"text"', "12", "-1.5E-3", "[NaN, Infinity, -Infinity]", '{"dup": 1, "dup": 2}',
    b'{"bytes": "\xc3\xa9"}', b'\xef\xbb\xbf{"bom": 1}', '{"a": 1}'.encode("utf-16"),
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_loads_reads_what_json_reads(text: str | bytes) -> None:
    ours, theirs = jsontext.loads(text), json.loads(text)
    if isinstance(theirs, list) and theirs and isinstance(theirs[0], float) and math.isnan(theirs[0]):
        assert math.isnan(ours[0]) and ours[1:] == theirs[1:]
    else:
        assert ours == theirs and type(ours) is type(theirs)


BAD_DOCUMENTS = ['{"a": }', "", "   ", "[1, 2", '{"a": 1} extra', "\ufeff{}", '{"a": "\\x"}', "{'a': 1}",
                 '{"a": "tab\there"}', b"\xff\xfe\xfd", "[1,]", "nul"]


@pytest.mark.parametrize("text", BAD_DOCUMENTS)
def test_loads_fails_as_json_fails(text: str | bytes) -> None:
    with pytest.raises(Exception) as theirs:
        json.loads(text)
    with pytest.raises(Exception) as ours:
        jsontext.loads(text)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


def test_round_trip_of_a_state_record() -> None:
    record = VALUES[7]
    assert jsontext.loads(jsontext.dumps(record, indent=2, sort_keys=True)) == record
