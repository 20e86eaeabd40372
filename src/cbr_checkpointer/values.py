"""`@value`: the package's value classes, built without compiling any code.

`@dataclass` writes each class's `__init__`, `__eq__`, `__repr__`, ... as source text and compiles it with
`exec`. Measured on python3.13, that cost ~4M instructions (~1.3 ms) per class, 70% of it compiling, and
the ~40 value classes the handler imports spent ~10% of Lambda's init on it. `value` builds the same
methods as closures over the field list instead, for ~0.3M instructions a class.

A `@value` class behaves as `@dataclass(frozen=True, slots=True)` does, and `@value(frozen=False)` as
`@dataclass(slots=True)`, for what the package uses: construction (positional, keyword, defaults, default
factories, the same TypeErrors), `__post_init__`, `__eq__`, `__hash__`, `__repr__`, `__match_args__`,
`__slots__`, FrozenInstanceError, copy and pickle, and `replace`; the unit tests pin each against the
standard library. Left out on purpose: inherited fields (a value class or dataclass as a base is refused),
InitVar, KW_ONLY, ordering, `field(init=, compare=, hash=)`, and `dataclasses.fields`/`asdict`, which do not
know these classes. Differences: an unknown keyword's error lacks python3.13's "Did you mean" hint; setting
an attribute that is not a field of a frozen instance raises FrozenInstanceError (the dataclass raises a
TypeError from `super()` there); a class without a docstring gets no generated signature as `__doc__`.
"""

from __future__ import annotations

import re
from _thread import get_ident
from collections.abc import Callable, Sequence
from dataclasses import FrozenInstanceError
from inspect import get_annotations
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, dataclass_transform, overload

__all__ = ["field", "replace", "value"]

_T = TypeVar("_T")
_MISSING: Any = object()
_FIELDS = "__value_fields__"
# What dataclasses recognise in a string annotation: `ClassVar[...]`, `typing.ClassVar`, ...
_CLASSVAR = re.compile(r"\s*(?:\w+\s*\.\s*)?ClassVar\b")
_UNSUPPORTED = re.compile(r"\s*(?:\w+\s*\.\s*)?(?:InitVar|KW_ONLY)\b")


class _Field:
    __slots__ = ("default", "default_factory", "repr")

    def __init__(self, default: Any, default_factory: Callable[[], Any] | None, repr: bool) -> None:
        self.default = default
        self.default_factory = default_factory
        self.repr = repr


@overload
def field(*, default: _T, repr: bool = True) -> _T: ...
@overload
def field(*, default_factory: Callable[[], _T], repr: bool = True) -> _T: ...
@overload
def field(*, repr: bool = True) -> Any: ...
def field(
    *, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None, repr: bool = True
) -> Any:
    """A field with a default, a default factory, or left out of the repr (as `dataclasses.field`)."""
    if default is not _MISSING and default_factory is not None:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, default_factory, repr)


@overload
def value(cls: type[_T], /) -> type[_T]: ...
@overload
def value(*, frozen: bool = True) -> Callable[[type[_T]], type[_T]]: ...
@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def value(cls: type[_T] | None = None, /, *, frozen: bool = True) -> Any:
    """Make `cls` a slotted value class: frozen unless `frozen=False`."""
    if cls is None:
        return lambda undecorated: _build(undecorated, frozen)
    return _build(cls, frozen)


if TYPE_CHECKING:
    # The type checker's own rule for `dataclasses.replace` checks the names and types of the changes.
    from dataclasses import replace
else:

    def replace(obj, /, **changes):
        """A copy of the value `obj` with `changes`, made through its `__init__` (so `__post_init__` runs)."""
        names = getattr(type(obj), _FIELDS, None)
        if names is None:
            raise TypeError("replace() should be called on value class instances")
        for name in names:
            if name not in changes:
                changes[name] = getattr(obj, name)
        return obj.__class__(**changes)


class _Fields:
    """What a class body declares: its fields in order, their defaults, and those its repr leaves out."""

    def __init__(self, cls: type, namespace: dict[str, Any]) -> None:
        self.names: list[str] = []
        self.defaults: dict[str, Any] = {}
        self.factories: dict[str, Callable[[], Any]] = {}
        self.hidden: set[str] = set()
        for name, annotation in get_annotations(cls).items():
            text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
            if _CLASSVAR.match(text):
                continue
            if _UNSUPPORTED.match(text):
                raise TypeError(f"field {name!r} of {cls.__qualname__}: value classes do not support {text}")
            self._add(name, namespace.pop(name, _MISSING))
        for name, declared in namespace.items():
            if isinstance(declared, _Field):
                raise TypeError(f"{name!r} is a field but has no type annotation")

    def _add(self, name: str, declared: Any) -> None:
        if isinstance(declared, _Field):
            if not declared.repr:
                self.hidden.add(name)
            if declared.default_factory is not None:
                self.factories[name] = declared.default_factory
            declared = declared.default
        if declared is not _MISSING:
            if type(declared).__hash__ is None:
                raise ValueError(
                    f"mutable default {type(declared)} for field {name} is not allowed: use default_factory"
                )
            self.defaults[name] = declared
        elif name not in self.factories and (self.defaults or self.factories):
            raise TypeError(f"non-default argument {name!r} follows default argument {self.names[-1]!r}")
        self.names.append(name)


def _build(cls: type[_T], frozen: bool) -> type[_T]:
    for base in cls.__mro__[1:-1]:
        if _FIELDS in base.__dict__ or "__dataclass_fields__" in base.__dict__:
            raise TypeError(
                f"{cls.__qualname__} cannot inherit from {base.__qualname__}: "
                "value classes do not inherit fields"
            )
    namespace = dict(cls.__dict__)
    if "__slots__" in namespace:
        raise TypeError(f"{cls.__name__} already specifies __slots__")
    if frozen and ("__setattr__" in namespace or "__delattr__" in namespace):
        raise TypeError(f"Cannot overwrite attribute __setattr__ or __delattr__ in class {cls.__name__}")
    fields = _Fields(cls, namespace)
    names = tuple(fields.names)
    class_hash = namespace.get("__hash__", _MISSING)
    explicit_hash = not (class_hash is _MISSING or (class_hash is None and "__eq__" in namespace))
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    namespace["__slots__"] = names
    namespace[_FIELDS] = names
    namespace.setdefault("__match_args__", names)
    # A new class, as the dataclass's slots=True makes one: __slots__ cannot be added to a class that exists.
    metaclass: Any = type(cls)
    built: type[_T] = metaclass(cls.__name__, cls.__bases__, namespace)
    built.__qualname__ = cls.__qualname__

    getters = [attrgetter(name) for name in names]
    setters = [built.__dict__[name].__set__ for name in names]
    methods: dict[str, Callable[..., Any]] = {}
    if "__init__" not in namespace:
        methods["__init__"] = _init(built, fields, setters)
    if "__repr__" not in namespace:
        methods["__repr__"] = _repr([(name, attrgetter(name)) for name in names if name not in fields.hidden])
    if "__eq__" not in namespace:
        methods["__eq__"] = _eq(getters)
    if frozen:
        methods["__setattr__"], methods["__delattr__"] = _frozen(built, frozenset(names))
        methods["__getstate__"] = lambda self: [get(self) for get in getters]
        methods["__setstate__"] = _setstate(setters)
    if not explicit_hash and frozen:
        methods["__hash__"] = _hash(names)
    for name, method in methods.items():
        method.__name__ = name
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(built, name, method)
    if not explicit_hash and not frozen:
        # Mutable and compared by value, so unhashable (type.__setattr__: a class's __hash__ may be None).
        type.__setattr__(built, "__hash__", None)
    return built


_REQUIRED: Any = object()
_FACTORY: Any = object()


def _init(cls: type, fields: _Fields, setters: list[Callable[[Any, Any], None]]) -> Callable[..., None]:
    names, defaults, factories = fields.names, fields.defaults, fields.factories
    count = len(names)
    positions = {name: position for position, name in enumerate(names)}
    # What a position holds until an argument fills it; the markers are found again by identity.
    fill = [defaults.get(name, _FACTORY if name in factories else _REQUIRED) for name in names]
    unfilled = [position for position, name in enumerate(names) if name not in defaults]
    unfilled_from = [[position for position in unfilled if position >= given] for given in range(count + 1)]
    made_by = {positions[name]: factory for name, factory in factories.items()}
    post_init = hasattr(cls, "__post_init__")
    refuse = _refusal(f"{cls.__qualname__}.__init__()", names, count - len(defaults) - len(factories), fill)

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        given = len(args)
        if given > count:
            refuse(args, kwargs)
        values = [*args, *fill[given:]]
        for key, item in kwargs.items():
            position = positions.get(key, -1)
            if position < given:
                refuse(args, kwargs)
            values[position] = item
        for position in unfilled_from[given]:
            item = values[position]
            if item is _FACTORY:
                values[position] = made_by[position]()
            elif item is _REQUIRED:
                refuse(args, kwargs)
        return values

    def __init__(self: Any, /, *args: Any, **kwargs: Any) -> None:
        values: Sequence[Any] = args
        if kwargs or len(args) != count:
            values = bind(args, kwargs)
        for assign, item in zip(setters, values, strict=True):
            assign(self, item)
        if post_init:
            self.__post_init__()

    return __init__


def _refusal(
    function: str, names: list[str], required: int, fill: list[Any]
) -> Callable[[tuple[Any, ...], dict[str, Any]], NoReturn]:
    count = len(names)

    def refuse(args: tuple[Any, ...], kwargs: dict[str, Any]) -> NoReturn:
        # The checks, their order and their messages are the interpreter's for a function of this signature.
        given = len(args)
        for key in kwargs:
            if key not in names:
                raise TypeError(f"{function} got an unexpected keyword argument {key!r}")
            if names.index(key) < given:
                raise TypeError(f"{function} got multiple values for argument {key!r}")
        if given > count:
            takes = f"from {required + 1} to {count + 1}" if required < count else str(count + 1)
            plural = "s" if required < count or count else ""
            raise TypeError(
                f"{function} takes {takes} positional argument{plural} but {given + 1} were given"
            )
        missing = [
            name
            for position, name in enumerate(names)
            if position >= given and fill[position] is _REQUIRED and name not in kwargs
        ]
        raise TypeError(f"{function} missing {_count_of(missing)}: {_listed(missing)}")

    return refuse


def _count_of(missing: list[str]) -> str:
    return f"{len(missing)} required positional argument{'s' if len(missing) > 1 else ''}"


def _listed(names: list[str]) -> str:
    quoted = [repr(name) for name in names]
    if len(quoted) < 3:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _repr(shown: list[tuple[str, Callable[[Any], Any]]]) -> Callable[[Any], str]:
    running: set[tuple[int, int]] = set()

    def __repr__(self: Any) -> str:
        # As the dataclass's: a value that contains itself shows "..." there instead of recursing.
        key = (id(self), get_ident())
        if key in running:
            return "..."
        running.add(key)
        try:
            shown_fields = ", ".join(f"{name}={get(self)!r}" for name, get in shown)
            return f"{self.__class__.__qualname__}({shown_fields})"
        finally:
            running.discard(key)

    return __repr__


def _eq(getters: Sequence[Callable[[Any], Any]]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if self is other:
            return True
        if other.__class__ is not self.__class__:
            return NotImplemented
        result: Any = True
        for get in getters:
            result = get(self) == get(other)
            if not result:
                return result
        return result

    return __eq__


def _hash(names: tuple[str, ...]) -> Callable[[Any], int]:
    if not names:
        return lambda self: hash(())
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda self: hash((get(self),))
    get_all = attrgetter(*names)
    return lambda self: hash(get_all(self))


def _frozen(cls: type, names: frozenset[str]) -> tuple[Callable[..., None], Callable[..., None]]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        object.__delattr__(self, name)

    return __setattr__, __delattr__


def _setstate(setters: list[Callable[[Any, Any], None]]) -> Callable[[Any, list[Any]], None]:
    def __setstate__(self: Any, state: list[Any]) -> None:
        for assign, item in zip(setters, state, strict=True):
            assign(self, item)

    return __setstate__
