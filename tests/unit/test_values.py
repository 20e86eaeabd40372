"""`@value` behaves as the standard library's `@dataclass(frozen=True, slots=True)`, and
`@value(frozen=False)` as `@dataclass(slots=True)`: each class shape is declared both ways and every
observable is compared."""

from __future__ import annotations

import builtins
import copy
import dataclasses
import pickle
import re
import typing
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from cbr_checkpointer.values import field, replace, value

Decorate = Callable[[type[Any]], type[Any]]


def declare(decorate: Decorate, make_field: Callable[..., Any]) -> SimpleNamespace:
    """The same class shapes, made by `decorate`. Declared in one function, so both sets share qualnames
    (and so their reprs can be compared as text)."""

    @decorate
    class Plain:
        a: int
        b: str

    @decorate
    class Single:
        only: str

    @decorate
    class Empty:
        pass

    @decorate
    class Defaults:
        a: int
        b: str = "b"
        c: tuple[int, ...] = (1, 2)
        d: int | None = None

    @decorate
    class Factories:
        name: str
        items: list[int] = make_field(default_factory=list)
        table: dict[str, int] = make_field(default_factory=dict)

    @decorate
    class Hidden:
        user: str
        secret: str = make_field(repr=False)
        note: str = make_field(default="n", repr=False)
        shown: str = make_field(default="s")

    @decorate
    class Checked:
        low: int
        high: int = 10

        def __post_init__(self) -> None:
            if self.low > self.high:
                raise ValueError(f"low {self.low} is above high {self.high}")

    @decorate
    class WithClassVars:
        limit: ClassVar[int] = 3
        names: typing.ClassVar[tuple[str, ...]] = ("x",)
        x: int

        def over(self) -> bool:
            return self.x > self.limit

    @decorate
    class Unions:
        maybe: str | None
        either: int | str = 0
        inner: Plain | None = None

    return SimpleNamespace(
        Plain=Plain,
        Single=Single,
        Empty=Empty,
        Defaults=Defaults,
        Factories=Factories,
        Hidden=Hidden,
        Checked=Checked,
        WithClassVars=WithClassVars,
        Unions=Unions,
    )


REFERENCE = declare(dataclasses.dataclass(frozen=True, slots=True), dataclasses.field)
OURS = declare(value, field)
MUTABLE_REFERENCE = declare(dataclasses.dataclass(slots=True), dataclasses.field)
MUTABLE_OURS = declare(value(frozen=False), field)

Call = tuple[tuple[Any, ...], dict[str, Any]]


def call(*args: Any, **kwargs: Any) -> Call:
    return args, kwargs


# Every way to call each shape: the good ones, and each TypeError the interpreter raises for a bad one.
CALLS: dict[str, list[Call]] = {
    "Plain": [
        call(1, "x"),
        call(1, b="x"),
        call(a=1, b="x"),
        call(b="x", a=1),
        call(),
        call(1),
        call(b="x"),
        call(1, "x", 3),
        call(1, "x", 3, 4),
        call(1, a=2),
        call(1, "x", b="y"),
        call(1, "x", c=3),
        call(1, "x", bb=3),
        call(1, 2, 3, a=4),
        call(z=1),
    ],
    "Single": [call("x"), call(only="x"), call(), call("x", "y"), call(onl="x"), call("x", only="y")],
    "Empty": [call(), call(1), call(1, 2), call(a=1)],
    "Defaults": [
        call(1),
        call(1, "x"),
        call(1, "x", (3,), 4),
        call(1, d=4),
        call(a=1, c=()),
        call(),
        call(b="x"),
        call(1, "x", (3,), 4, 5),
        call(1, "x", b="y"),
        call(1, e=2),
    ],
    "Factories": [call("n"), call("n", [1]), call("n", table={"a": 1}), call(), call("n", [1], {}, 1)],
    "Hidden": [call("u", "s"), call("u", secret="s", note="m", shown="t"), call("u"), call(secret="s")],
    "Checked": [call(1), call(1, 2), call(high=5, low=4), call(11), call(5, 4), call(low=1, lo=2)],
    "WithClassVars": [call(1), call(x=4), call(), call(1, 2), call(x=1, limit=2)],
    "Unions": [call(None), call("m", "e"), call(maybe=None, either=2, inner=None), call()],
}
SHAPES = sorted(CALLS)


def shape_names(names: list[str]) -> list[Any]:
    return [pytest.param(name, id=name) for name in names]


def without_hint(message: str) -> str:
    # python3.13 adds "Did you mean 'b'?" to an unknown keyword; `value`'s __init__ does not.
    return re.sub(r"\. Did you mean '\w+'\?$", "", message)


def outcome(cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    try:
        made = cls(*args, **kwargs)
    except (TypeError, ValueError) as error:
        return type(error), without_hint(str(error))
    return "made", repr(made), tuple(getattr(made, name) for name in cls.__match_args__)


def made(namespace: SimpleNamespace, shape: str, index: int = 0) -> Any:
    args, kwargs = CALLS[shape][index]
    return getattr(namespace, shape)(*args, **kwargs)


@pytest.mark.parametrize("shape", shape_names(SHAPES))
@pytest.mark.parametrize(
    ("reference", "ours"), [(REFERENCE, OURS), (MUTABLE_REFERENCE, MUTABLE_OURS)], ids=["frozen", "mutable"]
)
def test_every_call_makes_the_same_value_or_raises_the_same_error(
    reference: SimpleNamespace, ours: SimpleNamespace, shape: str
) -> None:
    expected = [outcome(getattr(reference, shape), *arguments) for arguments in CALLS[shape]]
    actual = [outcome(getattr(ours, shape), *arguments) for arguments in CALLS[shape]]

    assert actual == expected
    # The cases cover both paths: values made, and calls refused.
    kinds = {result[0] for result in expected}
    assert "made" in kinds
    assert kinds & {TypeError, ValueError}


@pytest.mark.parametrize("shape", shape_names(SHAPES))
def test_the_class_has_the_same_slots_match_args_and_no_instance_dict(shape: str) -> None:
    reference, ours = getattr(REFERENCE, shape), getattr(OURS, shape)

    assert ours.__slots__ == reference.__slots__
    assert ours.__match_args__ == reference.__match_args__
    assert ours.__qualname__ == reference.__qualname__
    assert hasattr(made(OURS, shape), "__dict__") is hasattr(made(REFERENCE, shape), "__dict__") is False
    assert hasattr(made(OURS, shape), "__weakref__") is hasattr(made(REFERENCE, shape), "__weakref__")


@pytest.mark.parametrize("shape", shape_names(SHAPES))
def test_equality_and_hash_follow_the_fields_within_one_class_only(shape: str) -> None:
    def hashed(instance: Any) -> int | str:
        try:
            return hash(instance)
        except TypeError as error:  # a field holds a list
            return str(error)

    for namespace in (REFERENCE, OURS):
        first, again = made(namespace, shape), made(namespace, shape)
        assert first == again
        assert not first != again  # noqa: SIM202 - __ne__ is Python's negation of the generated __eq__
        assert hashed(first) == hashed(again)
    ours, reference = made(OURS, shape), made(REFERENCE, shape)
    # The same fields hash alike (both hash the tuple of fields), yet two classes never compare equal.
    assert hashed(ours) == hashed(reference)
    assert ours != reference
    assert reference != ours
    assert ours.__eq__(reference) is NotImplemented
    assert ours.__eq__(object()) is NotImplemented


def test_a_different_field_makes_a_different_value() -> None:
    for namespace in (REFERENCE, OURS):
        assert namespace.Plain(1, "x") != namespace.Plain(2, "x")
        assert namespace.Plain(1, "x") != namespace.Plain(1, "y")
        assert hash(namespace.Plain(1, "x")) != hash(namespace.Plain(1, "y"))
        # A hidden field is still compared and hashed: repr=False hides it from the text only.
        assert namespace.Hidden("u", "s") != namespace.Hidden("u", "t")
        assert repr(namespace.Hidden("u", "s")) == repr(namespace.Hidden("u", "t"))


def test_a_value_is_unhashable_when_mutable_as_a_dataclass_is() -> None:
    for shape in SHAPES:
        assert getattr(MUTABLE_OURS, shape).__hash__ is getattr(MUTABLE_REFERENCE, shape).__hash__ is None
    with pytest.raises(TypeError, match="unhashable type"):
        hash(made(MUTABLE_OURS, "Plain"))


def test_reprs_are_the_dataclass_reprs_nesting_and_all() -> None:
    reference = REFERENCE.Unions("m", 1, REFERENCE.Plain(1, "x"))
    ours = OURS.Unions("m", 1, OURS.Plain(1, "x"))

    assert repr(ours) == repr(reference)
    assert repr(ours) == (
        "declare.<locals>.Unions(maybe='m', either=1, inner=declare.<locals>.Plain(a=1, b='x'))"
    )
    assert repr(OURS.Hidden("u", "s")) == repr(REFERENCE.Hidden("u", "s"))
    assert repr(OURS.Hidden("u", "s")) == "declare.<locals>.Hidden(user='u', shown='s')"


def test_a_mutable_value_that_contains_itself_shows_dots_as_the_dataclass_does() -> None:
    reference, ours = MUTABLE_REFERENCE.Factories("n"), MUTABLE_OURS.Factories("n")
    reference.items.append(reference)
    ours.items.append(ours)

    assert repr(ours) == repr(reference) == "declare.<locals>.Factories(name='n', items=[...], table={})"


@pytest.mark.parametrize("shape", shape_names(SHAPES))
def test_a_frozen_value_refuses_assignment_and_deletion_of_fields(shape: str) -> None:
    reference, ours = made(REFERENCE, shape), made(OURS, shape)
    for name in getattr(OURS, shape).__match_args__:
        errors = []
        for instance in (reference, ours):
            with pytest.raises(dataclasses.FrozenInstanceError) as assigning:
                setattr(instance, name, 1)
            with pytest.raises(dataclasses.FrozenInstanceError) as deleting:
                delattr(instance, name)
            errors.append((str(assigning.value), str(deleting.value)))
        assert errors[0] == errors[1] == (f"cannot assign to field {name!r}", f"cannot delete field {name!r}")
    assert issubclass(dataclasses.FrozenInstanceError, AttributeError)


def test_a_frozen_value_refuses_attributes_that_are_not_fields_too() -> None:
    ours = OURS.Plain(1, "x")

    # (The dataclass raises a TypeError from super() here, an accident of its slots=True class copy.)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'other'"):
        ours.other = 1
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'other'"):
        del ours.other


def test_a_mutable_value_takes_assignment_to_fields_and_nothing_else() -> None:
    outcomes = []
    for namespace in (MUTABLE_REFERENCE, MUTABLE_OURS):
        instance = namespace.Defaults(1)
        instance.b = "changed"
        del instance.d
        with pytest.raises(AttributeError) as reading:
            _ = instance.d
        with pytest.raises(AttributeError) as adding:
            instance.other = 1
        outcomes.append((instance.b, type(reading.value), type(adding.value)))

    assert outcomes[0] == outcomes[1] == ("changed", AttributeError, AttributeError)


def test_default_factories_make_a_new_object_for_each_instance() -> None:
    for namespace in (REFERENCE, OURS, MUTABLE_OURS):
        first, second = namespace.Factories("a"), namespace.Factories("b")
        assert first.items == second.items == []
        assert first.items is not second.items
        assert first.table is not second.table


def test_post_init_runs_after_the_fields_are_set_and_on_replace() -> None:
    results = []
    for namespace, replacing in ((REFERENCE, dataclasses.replace), (OURS, replace)):
        checked = namespace.Checked(1)
        with pytest.raises(ValueError, match="low 11 is above high 10") as raised:
            replacing(checked, low=11)
        results.append((replacing(checked, high=2), str(raised.value)))

    assert repr(results[0][0]) == repr(results[1][0]) == "declare.<locals>.Checked(low=1, high=2)"
    assert results[0][1] == results[1][1]


@pytest.mark.parametrize(
    "changes",
    [{}, {"a": 2}, {"b": "y", "a": 3}, {"c": 3}, {"a": 1, "zz": 2}],
    ids=["nothing", "one", "two", "unknown", "known-and-unknown"],
)
def test_replace_makes_the_same_copy_or_raises_the_same_error(changes: dict[str, Any]) -> None:
    def replaced(namespace: SimpleNamespace, replacing: Callable[..., Any]) -> tuple[Any, ...]:
        try:
            return "made", repr(replacing(namespace.Plain(1, "x"), **changes))
        except TypeError as error:
            return TypeError, without_hint(str(error))

    assert replaced(OURS, replace) == replaced(REFERENCE, dataclasses.replace)
    assert replaced(MUTABLE_OURS, replace) == replaced(MUTABLE_REFERENCE, dataclasses.replace)


def test_replace_refuses_what_is_not_a_value() -> None:
    with pytest.raises(TypeError, match="value class instances"):
        replace(REFERENCE.Plain(1, "x"), a=2)


@pytest.mark.parametrize("shape", shape_names(SHAPES))
@pytest.mark.parametrize(
    ("reference", "ours"), [(REFERENCE, OURS), (MUTABLE_REFERENCE, MUTABLE_OURS)], ids=["frozen", "mutable"]
)
def test_copy_and_deepcopy_make_equal_values_sharing_what_the_dataclass_shares(
    reference: SimpleNamespace, ours: SimpleNamespace, shape: str
) -> None:
    def copies(instance: Any) -> tuple[Any, ...]:
        shallow, deep = copy.copy(instance), copy.deepcopy(instance)
        names = type(instance).__match_args__
        return (
            shallow == instance,
            deep == instance,
            [getattr(shallow, name) is getattr(instance, name) for name in names],
            [getattr(deep, name) is getattr(instance, name) for name in names],
        )

    assert copies(made(ours, shape)) == copies(made(reference, shape))


# Pickle finds a class by its module and qualname, so these pairs live at module level.


@dataclasses.dataclass(frozen=True, slots=True)
class ReferenceRecord:
    key: str
    tags: tuple[str, ...] = ()
    extra: dict[str, int] = dataclasses.field(default_factory=dict)


@value
class Record:
    key: str
    tags: tuple[str, ...] = ()
    extra: dict[str, int] = field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class ReferenceTally:
    name: str
    count: int = 0


@value(frozen=False)
class Tally:
    name: str
    count: int = 0


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize(
    ("reference", "ours"),
    [
        (ReferenceRecord("k", ("a",), {"x": 1}), Record("k", ("a",), {"x": 1})),
        (ReferenceTally("t", 2), Tally("t", 2)),
    ],
    ids=["frozen", "mutable"],
)
def test_pickle_round_trips_with_the_dataclass_state(reference: Any, ours: Any, protocol: int) -> None:
    def pickled(instance: Any) -> tuple[Any, ...]:
        try:
            restored = pickle.loads(pickle.dumps(instance, protocol))
        except TypeError as error:
            return TypeError, str(error).replace(type(instance).__name__, "<class>")
        state = instance.__reduce_ex__(protocol)[2]
        return restored == instance, type(restored) is type(instance), state

    assert pickled(ours) == pickled(reference)
    # Protocols 0 and 1 cannot pickle a mutable slotted dataclass either; from 2 on, every value round trips.
    assert pickled(ours)[0] is True or (protocol < 2 and isinstance(ours, Tally))


def test_a_value_class_is_read_as_a_frozen_dataclass_by_match() -> None:
    match Record("k", ("a",)):
        case Record(key, tags):
            matched = (key, tags)
        case _:
            matched = None

    assert matched == ("k", ("a",))


def test_class_variables_are_not_fields() -> None:
    ours = OURS.WithClassVars(5)

    assert OURS.WithClassVars.limit == REFERENCE.WithClassVars.limit == 3
    assert OURS.WithClassVars.names == ("x",)
    assert ours.over() is True
    assert OURS.WithClassVars.__match_args__ == ("x",)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"__annotations__": {"a": "int", "b": "int"}, "a": 1}, TypeError),  # non-default after default
        ({"__annotations__": {"a": "list[int]"}, "a": []}, ValueError),  # mutable default
        ({"__annotations__": {"a": "dict[str, int]"}, "a": {}}, ValueError),
    ],
    ids=["non-default-after-default", "list-default", "dict-default"],
)
def test_a_class_the_dataclass_refuses_is_refused_for_the_same_reason(
    body: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error) as reference:
        dataclasses.dataclass(frozen=True, slots=True)(type("Broken", (), dict(body)))
    with pytest.raises(error) as ours:
        value(type("Broken", (), dict(body)))

    # python3.11's message stops where python3.13's goes on to name the default argument.
    assert str(ours.value).startswith(str(reference.value))


def test_a_field_needs_an_annotation_and_one_default_at_most() -> None:
    with pytest.raises(TypeError, match="'a' is a field but has no type annotation"):
        value(type("Broken", (), {"a": field(default=1)}))
    with pytest.raises(ValueError, match="cannot specify both default and default_factory"):
        field(default=1, default_factory=int)  # type: ignore[call-overload]


def test_inheriting_fields_is_refused_rather_than_half_supported() -> None:
    @value
    class Base:
        a: int

    @dataclasses.dataclass(frozen=True)
    class DataclassBase:
        a: int

    for base in (Base, DataclassBase):
        with pytest.raises(TypeError, match="value classes do not inherit fields"):
            value(type("Child", (base,), {"__annotations__": {"b": "int"}}))


@pytest.mark.parametrize("annotation", ["InitVar[int]", "dataclasses.InitVar[int]", "KW_ONLY"])
def test_what_value_classes_do_not_support_is_refused(annotation: str) -> None:
    with pytest.raises(TypeError, match="value classes do not support"):
        value(type("Broken", (), {"__annotations__": {"a": annotation}}))


def test_making_a_value_class_compiles_no_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # The reason this module exists: compiling each class's methods is what made dataclasses costly.
    compiled: list[str] = []

    def record(name: str) -> Callable[..., Any]:
        original = getattr(builtins, name)

        def recording(*args: Any, **kwargs: Any) -> Any:
            compiled.append(name)
            return original(*args, **kwargs)

        return recording

    for name in ("exec", "eval", "compile"):
        monkeypatch.setattr(builtins, name, record(name))

    namespace = declare(value, field)
    assert namespace.Factories("n", [1]) == namespace.Factories("n", [1])
    assert compiled == []
    # The probe does see the dataclass compile its methods.
    declare(dataclasses.dataclass(frozen=True, slots=True), dataclasses.field)
    assert "exec" in compiled
