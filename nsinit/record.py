"""Typed records: the part of ``dataclasses`` nsinit uses, built without ``exec``.

Why not dataclasses: every ``nsinit exec`` pays for its imports.  Importing
``dataclasses`` pulls in ``inspect`` (and with it ``ast``, ``dis``,
``tokenize``), and each ``@dataclass`` compiles its ``__init__``, ``__eq__``,
``__repr__``, ``__hash__`` and frozen ``__setattr__`` from source text at class
creation.  For nsinit's twenty record classes that was ~25 ms of a ~100 ms
container start here.  The methods below are shared, generic functions that
read the class's field table, so defining a record costs a few microseconds.

The spelling follows dataclasses (``@record(frozen=True)``, ``field``,
``fields``, ``asdict``, ``replace``) and type checkers treat ``record`` as
a dataclass through ``dataclass_transform``; instances behave like
dataclass instances for everything nsinit does with them.
"""
from __future__ import annotations

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    from typing import dataclass_transform as _dataclass_transform

    T = TypeVar("T")
else:
    def _dataclass_transform(**_ignored):
        return lambda decorator: decorator


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FrozenInstanceError(AttributeError):
    """Raised on assignment to a field of a frozen record."""


class Field:
    """One field of a record: its name and how it gets a value."""

    __slots__ = ("name", "default", "default_factory", "compare")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING, compare: bool = True) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("a field cannot have both a default and a default_factory")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.default_factory is MISSING

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r}, compare={self.compare})"


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | Any = MISSING,
          compare: bool = True) -> Any:
    """A field with a default factory (for mutable values) or excluded from ==."""
    return Field(default, default_factory, compare)


def fields(record_or_class: Any) -> tuple[Field, ...]:
    """The record's fields in definition order."""
    try:
        return record_or_class.__record_fields__  # type: ignore[no-any-return]
    except AttributeError:
        raise TypeError(f"{record_or_class!r} is not a record") from None


def is_record(obj: Any) -> bool:
    return hasattr(obj, "__record_fields__")


def asdict(obj: Any) -> Any:
    """Records become dicts, recursively (through lists, tuples and dicts too)."""
    if is_record(obj) and not isinstance(obj, type):
        return {f.name: asdict(getattr(obj, f.name)) for f in obj.__record_fields__}
    if isinstance(obj, (list, tuple)):
        return type(obj)(asdict(item) for item in obj)
    if isinstance(obj, dict):
        return {key: asdict(value) for key, value in obj.items()}
    return obj


def replace(obj: T, **changes: Any) -> T:
    """A copy of ``obj`` with some fields changed (frozen records included)."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(obj)(**values)


@_dataclass_transform(field_specifiers=(field, Field))
def record(cls: type[T] | None = None, *, frozen: bool = False, kw_only: bool = False) -> Any:
    """Class decorator: ``@record`` or ``@record(frozen=True, kw_only=True)``."""
    def wrap(cls: type[T]) -> type[T]:
        return _make_record(cls, frozen, kw_only)
    return wrap if cls is None else wrap(cls)


def _make_record(cls: type[T], frozen: bool, kw_only: bool) -> type[T]:
    table = _collect_fields(cls, kw_only)
    cls.__record_fields__ = table  # type: ignore[attr-defined]
    cls.__record_positional__ = () if kw_only else tuple(f.name for f in table)  # type: ignore[attr-defined]
    cls.__init__ = _init  # type: ignore[method-assign]
    if "__repr__" not in cls.__dict__:
        cls.__repr__ = _repr  # type: ignore[method-assign]
    if "__eq__" not in cls.__dict__:
        cls.__eq__ = _eq  # type: ignore[method-assign]
        # Same rule as dataclasses: equal values must hash equally, so only
        # immutable records are hashable.
        cls.__hash__ = _hash if frozen else None  # type: ignore[assignment,method-assign]
    if frozen:
        cls.__setattr__ = _refuse_setattr  # type: ignore[method-assign]
        cls.__delattr__ = _refuse_delattr  # type: ignore[method-assign]
    return cls


def _collect_fields(cls: type, kw_only: bool) -> tuple[Field, ...]:
    inherited = {f.name: f for base in reversed(cls.__mro__[1:]) for f in getattr(base, "__record_fields__", ())}
    own: dict[str, Field] = {}
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, MISSING)
        spec = value if isinstance(value, Field) else Field(default=value)
        spec.name = name
        if isinstance(value, Field):
            # Like dataclasses: the class attribute is the plain default, or absent.
            if spec.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
        elif isinstance(value, (list, dict, set)):
            raise ValueError(f"{cls.__name__}.{name}: mutable default; use field(default_factory=...)")
        own[name] = spec
    table = tuple({**inherited, **own}.values())
    if not kw_only:
        _check_defaults_last(cls, table)
    return table


def _check_defaults_last(cls: type, table: tuple[Field, ...]) -> None:
    seen_default = False
    for f in table:
        if not f.required:
            seen_default = True
        elif seen_default:
            raise TypeError(f"{cls.__name__}: field {f.name!r} without a default follows one with a default")


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    name = cls.__name__
    positional = cls.__record_positional__
    if len(args) > len(positional):
        raise TypeError(f"{name}() takes {len(positional)} positional arguments but {len(args)} were given")
    values = dict(zip(positional, args))
    for key, value in kwargs.items():
        if key in values:
            raise TypeError(f"{name}() got multiple values for argument {key!r}")
        values[key] = value
    table = cls.__record_fields__
    known = {f.name for f in table}
    for key in values:
        if key not in known:
            raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
    missing = []
    for f in table:
        if f.name in values:
            value = values[f.name]
        elif f.default is not MISSING:
            value = f.default
        elif f.default_factory is not MISSING:
            value = f.default_factory()
        else:
            missing.append(f.name)
            continue
        object.__setattr__(self, f.name, value)
    if missing:
        raise TypeError(f"{name}() missing required argument(s): {', '.join(repr(m) for m in missing)}")
    post_init = getattr(self, "__post_init__", None)
    if post_init is not None:
        post_init()


def _compared_values(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, f.name) for f in obj.__record_fields__ if f.compare)


def _repr(self: Any) -> str:
    parts = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__)
    return f"{type(self).__qualname__}({parts})"


def _eq(self: Any, other: Any) -> Any:
    if type(other) is not type(self):
        return NotImplemented
    return _compared_values(self) == _compared_values(other)


def _hash(self: Any) -> int:
    return hash(_compared_values(self))


def _refuse_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of frozen {type(self).__name__}")


def _refuse_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r} of frozen {type(self).__name__}")
