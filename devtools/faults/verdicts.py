"""What is wrong with a row: the invariants every scenario keeps (at most one checkpoint per
idempotency key, every created checkpoint reported, nothing lost, no Failed for a transient fault,
consistent events), the harness' own check that the calls went through the proxies, and the verdict
its scenario expects.
"""

from __future__ import annotations

from collections import Counter

from devtools.faults.model import Row


def invariant_problems(row: Row) -> list[str]:
    """What breaks the rules that hold in every row, whatever the fault.

    Checkpoints are told apart by name: every scenario's requests have names of their own (derived
    from their keys, or given once), so two checkpoints with one name are two for one key.
    """
    problems: list[str] = []
    names = Counter((checkpoint.get("extra_info") or {}).get("name") for checkpoint in row.created)
    problems += [f"{count} checkpoints named {name!r}" for name, count in names.items() if count > 1]
    if len(row.created) > row.scenario.keys:
        problems.append(f"{len(row.created)} checkpoints for {row.scenario.keys} idempotency key(s)")

    by_key = row.by_key()
    owner: dict[str, str] = {}
    for key, details in by_key.items():
        kinds = {detail["outcome"] for detail in details}
        if len(kinds) > 1:
            problems.append(f"{key}: published as {sorted(kinds)}")
        ids = {detail["checkpoint"]["id"] for detail in details if detail["outcome"] == "created"}
        if len(ids) > 1:
            problems.append(f"{key}: Created events name {len(ids)} different checkpoints")
        fresh = [d for d in details if d["outcome"] == "created" and not d.get("duplicate")]
        if len(fresh) > 1:
            problems.append(f"{key}: {len(fresh)} Created events not marked duplicate")
        for checkpoint_id in ids:
            if owner.setdefault(checkpoint_id, key) != key:
                problems.append(
                    f"checkpoint {checkpoint_id} reported for two keys: {owner[checkpoint_id]}, {key}"
                )
        for detail in details:
            error = detail.get("error") or {}
            if detail["outcome"] == "failed" and error.get("retryable"):
                problems.append(f"{key}: Failed for a retryable error {error.get('code')}")

    reported = set(owner)
    at_emulator = {checkpoint["id"] for checkpoint in row.created}
    if reported - at_emulator:
        problems.append(f"events name checkpoints CBR never created: {sorted(reported - at_emulator)}")
    unreported = at_emulator - reported
    if unreported and not row.ended_pending:
        problems.append(f"checkpoints created but never reported: {sorted(unreported)}")
    if not row.ended_pending and len(by_key) < row.scenario.keys:
        problems.append(f"lost: {row.scenario.keys - len(by_key)} request(s) ended with no event")
    if len(by_key) > row.scenario.keys:
        problems.append(f"events for {len(by_key)} keys, the request has {row.scenario.keys}")
    if "failed" not in row.scenario.expect.outcomes and row.events_of("CBR Checkpoint Failed"):
        problems.append("Failed published for a transient fault")
    if set(row.outcomes()) == {"rejected"} and row.cbr_requests:
        problems.append("a rejected request reached CBR")
    return problems


def bypassed_problems(row: Row) -> list[str]:
    """The harness' own check: the function's calls went through the faulting proxies."""
    problems = []
    if row.events and not row.aws.count(target=".PutEvents"):
        problems.append("events were published around the proxy (AWS_ENDPOINT_URL_<SERVICE> not honoured?)")
    if row.cbr_requests and not row.cbr.calls:
        problems.append("CBR was called around the proxy (CBR_ENDPOINT not honoured?)")
    if row.scenario.watch and row.created and not row.aws.count(target=".SendMessageBatch"):
        problems.append("no completion check was scheduled through the proxy (AWS_ENDPOINT_URL_SQS?)")
    return problems


def expectation_problems(row: Row) -> list[str]:
    expect = row.scenario.expect
    problems: list[str] = []
    if sorted(row.outcomes()) != sorted(expect.outcomes):
        problems.append(f"outcomes {row.outcomes()}, expected {sorted(expect.outcomes)}")
    if len(row.created) != expect.checkpoints:
        problems.append(f"{len(row.created)} checkpoints, expected {expect.checkpoints}")
    if expect.code is not None:
        codes = {(d.get("error") or {}).get("code") for d in row.events_of("CBR Checkpoint Failed")}
        if codes != {expect.code}:
            problems.append(f"Failed with {sorted(map(str, codes))}, expected {expect.code}")
    for wanted in expect.fields:
        named = {
            e["field"] for d in row.events_of("CBR Backup Request Rejected") for e in d.get("errors", [])
        }
        if wanted not in named:
            problems.append(f"the rejection does not name {wanted!r} (names {sorted(named)})")
    if expect.returns is not None and row.returns != expect.returns:
        problems.append(f"returned/raised {row.returns} time(s), expected {expect.returns}")
    if expect.check is not None:
        problems += list(expect.check(row))
    return problems
