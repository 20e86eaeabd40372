"""What a request may name, against the official `huaweicloudsdkcbr`: every region id it knows, and the
vault filters a selection uses."""

from __future__ import annotations

import inspect
import re

import pytest
from huaweicloudsdkcbr.v1 import model as sdk
from huaweicloudsdkcbr.v1.region.cbr_region import CbrRegion

from cbr_checkpointer.triggers.requests import REGION_PATTERN
from cbr_checkpointer.triggers.selection import OBJECT_TYPES


@pytest.mark.parametrize("region", sorted(CbrRegion.static_fields))
def test_every_region_of_the_sdk_is_a_well_formed_region_id(region: str) -> None:
    assert REGION_PATTERN.fullmatch(region)


def test_a_selection_s_object_types_are_those_of_the_vault_list_filter() -> None:
    documented = inspect.getdoc(sdk.ListVaultRequest.__init__) or ""
    line = next(line for line in documented.splitlines() if line.startswith(":param object_type:"))
    # The docstring lists each value in full-width parentheses, after its name in Chinese
    assert set(re.findall("\uff08([a-z]+)\uff09", line)) == OBJECT_TYPES


def test_a_selection_s_tag_filter_fields_are_those_of_the_sdk() -> None:
    # A selection's tags become the filter's `tags`: [{key, values}] (TagsReq)
    assert set(sdk.TagsReq.openapi_types) == {"key", "values"}
    assert sdk.TagsReq.openapi_types["values"] == "list[str]"
    assert "tags" in sdk.VaultResourceInstancesReq.openapi_types
