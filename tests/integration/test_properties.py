"""Properties of the real handler against the sandbox, over generated payloads, valid and broken.

- It never raises: every payload ends in events (a healthy emulator has no transient failures).
- A broken payload is Rejected, naming the field it breaks in `errors[].field`, and nothing of it
  reaches the emulator.
- A valid payload is never Rejected: it is Created, Failed by CBR (unknown vault, resource or project),
  or Validated (dry run), and CBR is called exactly for those that are Created or Failed.
- A poison record (a lone surrogate or NUL in any string, nesting of any depth, a body over the SQS
  limit, NaN) is Rejected on its own, naming its field, in an event any reader can parse; the
  other records of its batch are untouched.
- No request can claim another's key: a forged schedule firing for another request, a copy of a
  derived key as an idempotency_key, or a key naming the function's own records.

Payloads are generated as a valid request plus a few mutations, each of which breaks one known field.
Between examples only the emulator's activity, the capture queue and the runtime are reset. The
function may act on two projects (ALLOWED_PROJECT_IDS) and one region (CBR_REGION).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cbr_checkpointer.handler import lambda_handler
from cbr_checkpointer.runtime import reset_runtime
from cbr_checkpointer.triggers import RequestDefaults, parse_invocation
from devtools.records import sqs_record
from devtools.sandbox import PROJECT_ID, RESOURCE_ID, SECOND_VAULT_ID, VAULT_ID, LocalContext, Sandbox

pytestmark = pytest.mark.integration

# 1,000 examples in all, split over the two tests; a batch example carries 1-5 payloads, so some 2,000
# payloads go through the handler. PutEvents into moto (~25 ms) is what each example costs.
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "500"))  # per test
BATCH_MAX = 5
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REJECTED = "CBR Backup Request Rejected"
UNKNOWN_VAULT = "0e5e7a3c-9d1b-4b8f-a2c4-6d8e0f1a3b5c"
UNBOUND_RESOURCE = "6f1e2d3c-4b5a-4987-8a6b-5c4d3e2f1a0b"
OTHER_PROJECT_ID = "ffffffffffffffffffffffffffffffff"
FORBIDDEN_PROJECT_ID = "0123456789abcdef0123456789abcdef"
CBR_REGION = "cn-north-4"
CONFIGURATION = {"ALLOWED_PROJECT_IDS": f"{PROJECT_ID},{OTHER_PROJECT_ID}", "CBR_REGION": CBR_REGION}

# -- valid requests

names = st.one_of(
    st.from_regex(r"[A-Za-z0-9_\-]{1,64}", fullmatch=True),
    st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=1, max_size=64),
    st.sampled_from(["nightly-{time:%Y%m%d}", "run_{time:%H%M%S}", "{time:%Y}"]),
)
# Valid text: no lone surrogates (category Cs) and no NUL
descriptions = st.text(
    alphabet=st.characters(blacklist_characters="<>\x00", blacklist_categories=("Cs",)), max_size=255
)
resource_details = st.lists(
    st.fixed_dictionaries(
        {"id": st.just(RESOURCE_ID), "type": st.just("OS::Nova::Server")},
        optional={
            "name": st.text(
                alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20
            )
        },
    ),
    min_size=1,
    max_size=1,
)


@st.composite
def parameters(draw: st.DrawFn, vault_id: str) -> dict[str, Any]:
    chosen: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "name": names,
                "description": descriptions,
                "incremental": st.booleans(),
                "auto_trigger": st.booleans(),
                "policy_id": st.uuids().map(str),
            },
        )
    )
    if vault_id == VAULT_ID:
        resources = draw(st.sampled_from(["none", "bound", "details", "unbound"]))
        if resources == "bound":
            chosen["resources"] = [RESOURCE_ID]
        elif resources == "details":
            chosen["resource_details"] = draw(resource_details)
        elif resources == "unbound":
            chosen["resources"] = [UNBOUND_RESOURCE]
    if chosen.get("auto_trigger") is not True and draw(st.booleans()):
        chosen["retention_duration_days"] = draw(st.one_of(st.integers(1, 36500), st.just(-1)))
    return chosen


@dataclass
class Payload:
    """A generated request: its JSON, the fields it breaks (by item for a "many" request), and how it
    should end."""

    document: Any
    broken: list[str] = field(default_factory=list)  # top-level fields broken
    items: list[list[str]] = field(default_factory=list)  # per item of a "many" request: fields broken
    dry_run: bool = False

    @property
    def valid(self) -> bool:
        return not self.broken and not any(self.items)


# -- mutations: (field, bad value); a field of None deletes it

BAD_VALUES: dict[str, list[Any]] = {
    "vault_id": ["", "not-a-uuid", 42, None, [VAULT_ID], f"{VAULT_ID}0"],
    "name": ["", "has space", "x" * 65, "semi;colon", "{user}", "{time:%Y %m}", 7, True, ["a"]],
    "description": ["<b>", "a>b", "x" * 256, 5, False],
    "incremental": ["true", 1, 0, "yes"],
    "auto_trigger": ["false", 1],
    "resources": ["not-a-list", ["nope"], [5], {"id": RESOURCE_ID}],
    "retention_duration_days": [0, -2, 36501, "7", 7.5, True],
    "resource_details": [
        [{"id": RESOURCE_ID, "type": "OS::Bad::Type"}],
        [{"id": "x", "type": "OS::Nova::Server"}],
        [{"id": RESOURCE_ID}],
        "str",
    ],
    "policy_id": [5, ["p"]],
}
ENVELOPE_BAD_VALUES: dict[str, list[Any]] = {
    "project_id": ["bad id!", "", 5, "x" * 65, FORBIDDEN_PROJECT_ID],
    "region": ["eu-west-0", "cn-north-4.example.com", 4],
    "idempotency_key": ["", "x" * 257, "tab\tkey", 5, "key#completion", "clé"],
    "scheduled_time": ["yesterday", "2024-13-01T00:00:00Z", 5],
    "schedule_arn": ["", 5],
    "dry_run": ["yes", 1],
}
UNKNOWN_FIELDS = ["incremntal", "vault", "Name", "retention", "resource", "extra"]


@st.composite
def broken_request(draw: st.DrawFn, *, native: bool, prefix: str) -> tuple[dict[str, Any], list[str]]:
    """A shorthand or native request with 0-3 of its own fields broken, and the paths of those fields."""
    vault_id = draw(st.sampled_from([VAULT_ID, VAULT_ID, SECOND_VAULT_ID, UNKNOWN_VAULT]))
    params = draw(parameters(vault_id))
    shorthand: dict[str, Any] = {"vault_id": vault_id, **params}
    broken: list[str] = []
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        kind = draw(st.sampled_from(["bad", "bad", "bad", "missing", "unknown"]))
        if kind == "bad":
            name = draw(st.sampled_from(sorted(BAD_VALUES)))
            shorthand[name] = draw(st.sampled_from(BAD_VALUES[name]))
            broken.append(name)
        elif kind == "missing":
            shorthand.pop("vault_id", None)
            broken.append("vault_id")
        else:
            name = draw(st.sampled_from(UNKNOWN_FIELDS))
            shorthand[name] = draw(st.sampled_from([True, "x", 1]))
            broken.append(name)
    # A retention beside a (valid) auto_trigger=true is itself a broken field.
    if shorthand.get("auto_trigger") is True and "retention_duration_days" in shorthand:
        broken.append("retention_duration_days")
    if not native:
        return shorthand, [_path(prefix, name) for name in broken]
    unknown = {name: shorthand.pop(name) for name in list(shorthand) if name in UNKNOWN_FIELDS}
    checkpoint: dict[str, Any] = {"parameters": {k: v for k, v in shorthand.items() if k != "vault_id"}}
    if "vault_id" in shorthand:
        checkpoint["vault_id"] = shorthand["vault_id"]
    paths = [
        _path(prefix, name)
        if name in UNKNOWN_FIELDS
        else _path(prefix, "checkpoint.vault_id" if name == "vault_id" else f"checkpoint.parameters.{name}")
        for name in broken
    ]
    return {"checkpoint": checkpoint, **unknown}, paths


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


@st.composite
def envelope(draw: st.DrawFn, request: dict[str, Any], prefix: str) -> tuple[list[str], bool]:
    """Add envelope fields to `request`, some broken; the broken paths, and whether it is a dry run."""
    broken: list[str] = []
    if draw(st.booleans()):
        request["project_id"] = draw(st.sampled_from([PROJECT_ID, PROJECT_ID, OTHER_PROJECT_ID]))
    if draw(st.booleans()):
        request["idempotency_key"] = draw(st.uuids().map(lambda u: f"prop-{u}"))
    if draw(st.integers(0, 9)) == 0:
        request["dry_run"] = True
    if draw(st.integers(0, 4)) == 0:
        request["region"] = CBR_REGION
    if draw(st.booleans()):
        request["scheduled_time"] = draw(
            st.sampled_from(["2026-11-27T02:30:00Z", "2026-01-01T00:00:00+08:00"])
        )
        request["schedule_arn"] = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly"
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from(sorted(ENVELOPE_BAD_VALUES)))
        request[name] = draw(st.sampled_from(ENVELOPE_BAD_VALUES[name]))
        broken.append(_path(prefix, name))
    return broken, request.get("dry_run") is True


@st.composite
def payloads(draw: st.DrawFn) -> Payload:
    form = draw(st.sampled_from(["shorthand", "shorthand", "native", "many", "not-an-object"]))
    if form == "not-an-object":
        return Payload(
            draw(st.sampled_from([None, [], "text", 5, 1.5, True, [{"vault_id": VAULT_ID}]])), ["payload"]
        )
    if form != "many":
        request, broken = draw(broken_request(native=form == "native", prefix=""))
        envelope_broken, dry_run = draw(envelope(request, ""))
        return Payload(request, broken + envelope_broken, dry_run=dry_run)
    count = draw(st.sampled_from([1, 2, 3, 0, 101]))
    if count in (0, 101):
        return Payload({"requests": [{"vault_id": VAULT_ID}] * count}, ["requests"])
    items: list[dict[str, Any]] = []
    item_broken: list[list[str]] = []
    for index in range(count):
        item, broken = draw(broken_request(native=draw(st.booleans()), prefix=f"requests[{index}]"))
        items.append(item)
        item_broken.append(broken)
    document: dict[str, Any] = {"requests": items}
    top_broken, dry_run = draw(envelope(document, ""))
    return Payload(document, top_broken, items=item_broken, dry_run=dry_run)


# -- checking one delivery


def _named(fields: set[str], wanted: str) -> bool:
    return any(f == wanted or f.startswith((f"{wanted}.", f"{wanted}[")) for f in fields)


def _check(payload: Payload, events: list[dict[str, Any]], where: str) -> int:
    """Check the events of one payload; return how many of its requests CBR must have been asked about."""
    rejected = [event["detail"] for event in events if event["detail-type"] == REJECTED]
    others = [event["detail"] for event in events if event["detail-type"] != REJECTED]
    shown = json.dumps(payload.document)[:300]

    if payload.broken:
        # One rejection for the whole payload, naming every broken field
        assert len(events) == 1, (shown, events)
        assert len(rejected) == 1, (shown, events)
        fields = {error["field"] for error in rejected[0]["errors"]}
        for wanted in payload.broken:
            assert _named(fields, _path(where, wanted)), (shown, wanted, fields)
        return 0

    items = payload.items or [[]]
    assert len(events) == len(items), (shown, events)
    assert len(rejected) == sum(1 for broken in items if broken), (shown, [d.get("errors") for d in rejected])
    for detail in rejected:
        fields = {error["field"] for error in detail["errors"]}
        index = _item_index(fields) if payload.items else 0
        for wanted in items[index]:
            assert _named(fields, _path(where, wanted)), (shown, wanted, fields)
    for detail in others:
        if detail["outcome"] == "failed":
            # Only CBR's own refusals of a valid request: unknown vault, unbound resource, other project
            error = detail["error"]
            assert error.get("code") in {"BackupService.6105", "BackupService.6135", "APIGW.0302"}, (
                shown,
                error,
            )
            assert error["retryable"] is False
        else:
            assert detail["outcome"] == ("validated" if payload.dry_run else "created"), (shown, detail)
    return sum(1 for d in others if d["outcome"] in ("created", "failed") and not d.get("duplicate"))


def _item_index(fields: set[str]) -> int:
    """Which item of a many-request a rejection is about: every field it names is inside that item."""
    indexes = {int(match[1]) for field in fields if (match := re.search(r"requests\[(\d+)\]", field))}
    assert len(indexes) == 1, fields
    return indexes.pop()


def _only_creates(sandbox: Sandbox, expected: int) -> None:
    """CBR got one create for each request it answered, and nothing else: nothing of a rejected payload."""
    requests = [(r.method, r.path.rsplit("/", 1)[-1]) for r in sandbox.emulator.requests]
    assert requests == [("POST", "checkpoints")] * expected, requests


def _fresh(sandbox: Sandbox) -> None:
    """A clean slate per example: the emulator's activity, the capture queue, and a new execution
    environment (so a key that two examples happen to share is not served from the first one's ledger)."""
    sandbox.emulator.reset()
    sandbox.published_events()
    reset_runtime()


# -- the properties


@pytest.fixture
def configured(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, with the function allowed two projects and one region."""
    with sandbox.configured(**CONFIGURATION):
        yield sandbox


@SETTINGS
@given(payload=payloads())
def test_any_invocation_payload_ends_in_events_and_never_raises(
    configured: Sandbox, payload: Payload
) -> None:
    sandbox = configured
    _fresh(sandbox)
    event(f"invoke {'valid' if payload.valid else 'broken'}")

    result = lambda_handler(payload.document, LocalContext())

    events = sandbox.published_events()
    assert len(result["outcomes"]) == len(events)
    _only_creates(sandbox, _check(payload, events, where=""))


@st.composite
def sqs_bodies(draw: st.DrawFn) -> tuple[str, Payload, str]:
    """An SQS body: a payload as is, or inside an EventBridge or SNS envelope, or text that is not JSON.

    Returns how it is wrapped, the payload, and the path under which its fields are named.
    """
    wrapper = draw(st.sampled_from(["plain", "plain", "eventbridge", "sns", "not-json"]))
    if wrapper == "not-json":
        text = draw(st.text(max_size=50).filter(lambda t: not _is_json(t)))
        return wrapper, Payload(text, ["body"]), ""
    payload = draw(payloads())
    if payload.broken == ["payload"]:  # not an object: named after where it sits
        payload = Payload(payload.document, [], dry_run=payload.dry_run)
        root = {"plain": "body", "eventbridge": "detail", "sns": "Message"}[wrapper]
        payload.broken = [root]
        where = ""
    else:
        where = {"plain": "", "eventbridge": "detail", "sns": "Message"}[wrapper]
    return wrapper, payload, where


def _body(wrapper: str, document: Any) -> str:
    if wrapper == "not-json":
        return str(document)
    if wrapper == "eventbridge":
        return json.dumps({"detail-type": "Backup Requested", "source": "ops", "detail": document})
    if wrapper == "sns":
        return json.dumps({"Type": "Notification", "MessageId": "m", "Message": json.dumps(document)})
    return json.dumps(document)


def _own_key(document: Any, index: int) -> Any:
    """The document, made to name a key of its own where it names one at all.

    Two records of one batch that name the same key (an idempotency_key, or one schedule firing) are
    one request: one is created, the other goes back to the queue and is served from the ledger later.
    That is the fault matrix's duplicate-delivery row; here every record is its own request.
    """
    if not isinstance(document, dict):
        return document
    document = copy.deepcopy(document)
    for name in ("idempotency_key", "schedule_arn"):
        value = document.get(name)
        if isinstance(value, str) and 0 < len(value) < 200 and value.isprintable():
            document[name] = f"{value}-{index}"
    return document


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@SETTINGS
@given(cases=st.lists(sqs_bodies(), min_size=1, max_size=BATCH_MAX))
def test_any_sqs_batch_ends_in_events_and_nothing_is_returned(
    configured: Sandbox, cases: list[tuple[str, Payload, str]]
) -> None:
    sandbox = configured
    _fresh(sandbox)
    cases = [
        (wrapper, replace(payload, document=_own_key(payload.document, index)), where)
        for index, (wrapper, payload, where) in enumerate(cases)
    ]
    records = [sqs_record(_body(wrapper, payload.document)) for wrapper, payload, _ in cases]
    event(f"batch of {len(cases)}")
    for wrapper, payload, _ in cases:
        event(f"sqs {wrapper} {'valid' if payload.valid else 'broken'}")

    response = lambda_handler({"Records": records}, LocalContext())

    assert response == {"batchItemFailures": []}
    events = sandbox.published_events()
    answered = 0
    for record, (_, payload, where) in zip(records, cases, strict=True):
        mine = [event for event in events if event["detail"]["trigger"]["id"] == record["messageId"]]
        answered += _check(payload, mine, where=where)
    assert sum(1 for event in events if event["detail"]["trigger"]["kind"] != "sqs") == 0
    _only_creates(sandbox, answered)


# -- poison records: every limit broken, one record at a time ------------------------------------------

POISONED_FIELDS = ["name", "description", "schedule_arn", "idempotency_key", "policy_id"]
MAX_BODY_BYTES = 256 * 1024
MARK = "POISON-MARK"


@dataclass
class Poison:
    """An SQS body that breaks one limit, and the field its rejection must name."""

    body: str
    field: str
    kind: str


@st.composite
def poisons(draw: st.DrawFn) -> Poison:
    kind = draw(st.sampled_from(["surrogate", "nul", "surrogate-name", "deep", "oversized", "nan"]))
    wrapper = draw(st.sampled_from(["plain", "eventbridge", "sns"]))
    inner = {"plain": "", "eventbridge": "detail.", "sns": "Message."}[wrapper]
    whole = "Message" if wrapper == "sns" else "body"
    request: dict[str, Any] = {
        "vault_id": VAULT_ID,
        "idempotency_key": draw(st.uuids().map(lambda u: f"p-{u}")),
    }
    name = draw(st.sampled_from(POISONED_FIELDS))
    if kind in ("surrogate", "nul"):
        code = 0 if kind == "nul" else draw(st.integers(0xD800, 0xDFFF))
        request[name] = draw(st.text(alphabet="abc-", max_size=5)) + MARK
        raw, field = f"\\u{code:04x}", inner + name
    elif kind == "surrogate-name":
        request[f"{name}{MARK}"] = "x"
        raw, field = f"\\u{draw(st.integers(0xD800, 0xDFFF)):04x}", inner + "'" + name
    elif kind == "deep":
        depth = draw(st.sampled_from([33, 100, 1_000, 20_000]))
        request[name] = MARK
        raw, field = f'"{"[" * depth}{"]" * depth}"', whole
    elif kind == "nan":
        request["retention_duration_days"] = MARK
        raw, field = f'"{draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))}"', whole
    else:
        request["description"] = MARK
        raw, field = "x" * (MAX_BODY_BYTES + draw(st.integers(0, 4096))), "body"
    text = _body(wrapper, request)
    # The mark sits inside a JSON string (inside another one for SNS): swap it for the raw text there.
    if kind in ("deep", "nan"):
        quoted = '\\"' + MARK + '\\"' if wrapper == "sns" else f'"{MARK}"'
        text = text.replace(quoted, raw.strip('"'))
    else:
        text = text.replace(MARK, raw.replace("\\", "\\\\") if wrapper == "sns" else raw)
    return Poison(text, field, f"{kind} {wrapper}")


def _readable(event: dict[str, Any]) -> None:
    """The event is what any strict JSON reader accepts: UTF-8, no NaN, no lone surrogate."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in an event")

    text = json.dumps(event, ensure_ascii=False, allow_nan=False)
    json.loads(text.encode("utf-8"), parse_constant=refuse)


@settings(SETTINGS, max_examples=max(50, EXAMPLES // 5))
@given(poisoned=st.lists(poisons(), min_size=1, max_size=3), good=st.integers(0, 2))
def test_a_poison_record_is_rejected_on_its_own_and_its_batch_goes_on(
    configured: Sandbox, poisoned: list[Poison], good: int
) -> None:
    sandbox = configured
    _fresh(sandbox)
    for poison in poisoned:
        event(poison.kind)
    healthy = [
        json.dumps({"vault_id": VAULT_ID, "idempotency_key": f"good-{index}"}) for index in range(good)
    ]
    records = [sqs_record(poison.body) for poison in poisoned] + [sqs_record(body) for body in healthy]

    response = lambda_handler({"Records": records}, LocalContext())

    # Nothing goes back to the queue: every record ended in exactly one event
    assert response == {"batchItemFailures": []}
    events = sandbox.published_events()
    assert len(events) == len(records)
    for poison, record in zip(poisoned, records, strict=False):
        [mine] = [item for item in events if item["detail"]["trigger"]["id"] == record["messageId"]]
        _readable(mine)
        assert mine["detail-type"] == REJECTED, (poison.kind, mine["detail"])
        fields = [error["field"] for error in mine["detail"]["errors"]]
        if poison.kind.startswith("surrogate-name"):
            # The field is named with its surrogate escaped, under the same path
            [field] = fields
            assert field.startswith(poison.field), (field, poison.field)
            assert "\\ud" in field, field
        else:
            assert fields == [poison.field], (poison.kind, fields)
    created = [item for item in events if item["detail-type"] != REJECTED]
    assert [item["detail"]["outcome"] for item in created] == ["created"] * good
    _only_creates(sandbox, good)


# -- keys: nobody claims another request's key ---------------------------------------------------------

SCHEDULE_ARN = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly"
FORGERIES = [
    "other vault",
    "other resources",
    "derived key as own key",
    "derived digest as own key",
    "internal",
]


def _firing_key(firing: dict[str, Any]) -> str:
    """The key anyone can work out for a schedule firing: the scheme is public."""
    defaults = RequestDefaults(project_id=PROJECT_ID, default_vault_id=None)
    [item] = parse_invocation(firing, request_id="any", now=datetime.now(UTC), defaults=defaults)
    return item.idempotency_key


@settings(SETTINGS, max_examples=max(25, EXAMPLES // 10))
@given(
    forgery=st.sampled_from(FORGERIES),
    fired_at=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1)).map(
        lambda time: time.replace(microsecond=0, tzinfo=UTC).isoformat()
    ),
)
def test_no_sender_can_claim_a_schedule_firing_s_key(
    configured: Sandbox, forgery: str, fired_at: str
) -> None:
    sandbox = configured
    _fresh(sandbox)
    event(forgery)
    firing = {"schedule_arn": SCHEDULE_ARN, "scheduled_time": fired_at, "vault_id": VAULT_ID}
    key = _firing_key(firing)
    forged: dict[str, Any] = {
        "other vault": firing | {"vault_id": SECOND_VAULT_ID},
        "other resources": firing | {"resources": [RESOURCE_ID]},
        "derived key as own key": {"vault_id": SECOND_VAULT_ID, "idempotency_key": key},
        "derived digest as own key": {"vault_id": SECOND_VAULT_ID, "idempotency_key": key.removeprefix("d:")},
        "internal": {"vault_id": SECOND_VAULT_ID, "idempotency_key": f"{key.removeprefix('d:')}#completion"},
    }[forgery]

    # Given a queue sender who gets in first with a forged request
    assert lambda_handler({"Records": [sqs_record(json.dumps(forged))]}, LocalContext()) == {
        "batchItemFailures": []
    }
    [first] = sandbox.published_events()

    # When the schedule really fires
    lambda_handler(firing, LocalContext())

    # Then the firing makes its own checkpoint under its own key, and the forgery had another
    [real] = sandbox.published_events()
    assert (real["detail"]["outcome"], real["detail"]["duplicate"]) == ("created", False)
    assert (real["detail"]["idempotency_key"], real["detail"]["vault_id"]) == (key, VAULT_ID)
    assert first["detail"]["idempotency_key"] != key
    if forgery == "internal":
        assert [error["field"] for error in first["detail"]["errors"]] == ["idempotency_key"]
        _only_creates(sandbox, 1)
    else:
        assert first["detail"]["outcome"] == "created"
        _only_creates(sandbox, 2)
