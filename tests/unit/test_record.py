"""nsinit.record: the dataclass subset nsinit's records rely on."""
from __future__ import annotations

import pytest

from nsinit.record import FrozenInstanceError, asdict, field, fields, record, replace


@record(frozen=True)
class Point:
    x: int
    y: int = 0
    label: str = field(default="", compare=False)


@record
class Bag:
    name: str
    items: list[str] = field(default_factory=list)


@record(frozen=True, kw_only=True)
class Ordered:
    first: int = 1
    second: int


def test_fields_defaults_and_positional_order() -> None:
    assert [f.name for f in fields(Point)] == ["x", "y", "label"]
    assert Point(1) == Point(x=1, y=0)
    assert Point(1, 2).y == 2
    assert [f.required for f in fields(Point)] == [True, False, False]


def test_frozen_records_refuse_assignment_and_hash_by_value() -> None:
    p = Point(1, 2)
    with pytest.raises(FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.y  # type: ignore[misc]
    assert hash(p) == hash(Point(1, 2)) and len({p, Point(1, 2)}) == 1


def test_compare_false_fields_are_left_out_of_equality() -> None:
    assert Point(1, label="a") == Point(1, label="b")
    assert Point(1) != Point(2)
    assert Point(1) != (1, 0)


def test_mutable_records_get_fresh_defaults_and_no_hash() -> None:
    a, b = Bag("a"), Bag("b")
    a.items.append("x")
    assert b.items == []
    a.name = "renamed"
    assert a.name == "renamed"
    with pytest.raises(TypeError):
        hash(a)


def test_kw_only_records_take_keywords_in_any_field_order() -> None:
    assert Ordered(second=2).first == 1
    with pytest.raises(TypeError, match="positional"):
        Ordered(1, 2)  # type: ignore[misc]


@pytest.mark.parametrize("make, message", [
    (lambda: Point(), "missing required argument.*'x'"),
    (lambda: Point(1, 2, "l", 4), "takes 3 positional arguments"),
    (lambda: Point(1, x=2), "multiple values for argument 'x'"),
    (lambda: Point(1, z=2), "unexpected keyword argument 'z'"),
])
def test_wrong_arguments_are_type_errors(make, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        make()


def test_replace_asdict_and_repr() -> None:
    p = replace(Point(1, 2, "l"), y=5)
    assert p == Point(1, 5) and p.label == "l"
    with pytest.raises(TypeError, match="no field 'z'"):
        replace(p, z=1)
    assert asdict(Bag("b", ["i"])) == {"name": "b", "items": ["i"]}
    assert asdict({"k": (Point(1),)}) == {"k": ({"x": 1, "y": 0, "label": ""},)}
    assert repr(Point(1)) == "Point(x=1, y=0, label='')"


def test_class_definitions_are_checked() -> None:
    with pytest.raises(TypeError, match="without a default follows"):
        @record
        class Bad:
            a: int = 0
            b: int
    with pytest.raises(ValueError, match="mutable default"):
        @record
        class Shared:
            items: list[int] = []
    with pytest.raises(TypeError, match="not a record"):
        fields(object())
