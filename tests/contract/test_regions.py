"""Our region table against the official SDK's: same regions, same CBR and IAM endpoints, same overrides."""

from __future__ import annotations

import os

import huaweicloudsdkcore.auth.endpoint as sdk_iam_endpoints
import pytest
from huaweicloudsdkcbr.v1.region.cbr_region import CbrRegion
from huaweicloudsdkcore.auth.internal import IamHelper

from cbr_checkpointer.regions import (
    IAM_REGIONS,
    cbr_endpoint,
    cbr_override_variable,
    check_region_id,
    iam_endpoint,
    known_regions,
)

SDK_IAM_TABLE: dict[str, str] = getattr(sdk_iam_endpoints, "__IAM_ENDPOINT_DICT")


@pytest.fixture(autouse=True)
def no_sdk_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads its overrides from os.environ: start every test without any."""
    for variable in list(os.environ):
        if variable.startswith("HUAWEICLOUD_SDK_REGION_") or variable == "HUAWEICLOUD_SDK_IAM_ENDPOINT":
            monkeypatch.delenv(variable)


def test_our_regions_are_the_sdk_cbr_regions() -> None:
    assert known_regions() == set(CbrRegion.static_fields)


@pytest.mark.parametrize("region", sorted(CbrRegion.static_fields))
def test_each_region_has_the_sdk_cbr_endpoint(region: str) -> None:
    assert cbr_endpoint(region, {}) == CbrRegion.value_of(region).endpoints[0]


def test_the_iam_table_is_the_sdk_one() -> None:
    assert set(SDK_IAM_TABLE) == IAM_REGIONS
    every_region = known_regions() | set(SDK_IAM_TABLE) | {"xx-nowhere-1"}
    for region in every_region:
        assert iam_endpoint(region, {}) == IamHelper.get_iam_endpoint(region), region
    assert iam_endpoint(None, {}) == IamHelper.DEFAULT_ENDPOINT


def test_every_sdk_region_id_has_the_shape_we_accept() -> None:
    for region in known_regions() | set(SDK_IAM_TABLE):
        assert check_region_id(region) == region


@pytest.mark.parametrize("region", ["cn-north-4", "xx-private-7"])
def test_the_cbr_override_is_the_sdk_variable_and_its_first_endpoint_is_used(
    region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the SDK's own override, with two endpoints as the SDK allows
    variable = cbr_override_variable(region)
    monkeypatch.setenv(variable, "https://cbr-a.example.com,https://cbr-b.example.com")

    # Then we and the SDK pick the same endpoint, for a known region and for one only the override names
    assert variable == "HUAWEICLOUD_SDK_REGION_CBR_" + region.upper().replace("-", "_")
    assert (
        cbr_endpoint(region, os.environ)
        == CbrRegion.value_of(region).endpoints[0]
        == "https://cbr-a.example.com"
    )


def test_the_iam_override_is_the_sdk_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUAWEICLOUD_SDK_IAM_ENDPOINT", "https://iam-proxy.example.com")
    assert iam_endpoint("cn-north-4", os.environ) == IamHelper.get_iam_endpoint("cn-north-4")
    assert iam_endpoint(None, os.environ) == "https://iam-proxy.example.com"
