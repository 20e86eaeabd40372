"""The bench's memory-size advice says whether the size it names keeps the batch budget."""

from __future__ import annotations

from benchmarks.report import Results, memory_advice


def test_a_size_that_keeps_the_budget_is_named_as_the_smallest_that_does() -> None:
    advice = memory_advice(Results(recommended_memory=1024, memory_fits=True), bold=True)

    assert advice == (
        "Smallest size at which a warm SQS batch of 10 stays within 1.5 x one CBR call: **1024 MB**."
    )


def test_when_no_size_keeps_the_budget_the_advice_says_so() -> None:
    advice = memory_advice(Results(recommended_memory=1769, memory_fits=False))

    assert advice.startswith("No size keeps a warm SQS batch of 10 within 1.5 x one CBR call")
    assert advice.endswith("comes closest: 1769 MB.")
