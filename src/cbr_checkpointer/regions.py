"""Huawei Cloud regions and the CBR and IAM endpoint of each, as the official Python SDK knows them.

Every lookup is a pure function of (region id, environment overrides), so the function's own region
and a region named by one request are resolved alike. The overrides are the SDK's own variables:
`HUAWEICLOUD_SDK_REGION_CBR_<REGION_ID>` (region id upper-cased, `-` as `_`; the SDK allows several
endpoints separated by commas, the first is used) and `HUAWEICLOUD_SDK_IAM_ENDPOINT`.

Whatever becomes a host name is validated: region ids by their shape, endpoints as https URLs (plain
http only on loopback) without credentials, query or fragment.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

# A DNS label of lower-case words joined by '-', the first all letters: `cn-north-4`, `eu-west-101`,
# `my-kualalumpur-1`.
REGION_ID_PATTERN = re.compile(r"[a-z]{2,}(?:-[a-z0-9]+){1,4}")
MAX_REGION_ID_LENGTH = 63
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_PATTERN = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")

CBR_ENDPOINT_OVERRIDE_PREFIX = "HUAWEICLOUD_SDK_REGION_CBR_"
IAM_ENDPOINT_OVERRIDE = "HUAWEICLOUD_SDK_IAM_ENDPOINT"
GLOBAL_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"

# huaweicloudsdkcbr `CbrRegion`: every region has `https://cbr.{region}.myhuaweicloud.com`.
CBR_REGIONS = frozenset(
    {
        "af-north-1", "af-south-1", "ae-ad-1",
        "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
        "cn-east-2", "cn-east-3", "cn-east-4", "cn-east-5",
        "cn-north-1", "cn-north-2", "cn-north-4", "cn-north-9", "cn-north-11", "cn-north-12",
        "cn-south-1", "cn-south-2", "cn-south-4", "cn-southwest-2", "cn-southwest-3",
        "eu-west-0", "eu-west-101", "la-north-2", "la-south-2", "me-east-1", "my-kualalumpur-1",
        "na-mexico-1", "ru-moscow-1", "ru-northwest-2", "sa-brazil-1", "tr-west-1",
    }
)  # fmt: skip

# huaweicloudsdkcore's IAM endpoint table: `https://iam.{region}.myhuaweicloud.com`; other regions
# use the global endpoint.
IAM_REGIONS = frozenset(
    {
        "af-south-1", "ae-ad-1",
        "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
        "cn-east-2", "cn-east-3", "cn-east-4", "cn-east-5",
        "cn-north-1", "cn-north-2", "cn-north-4", "cn-north-9", "cn-north-12",
        "cn-south-1", "cn-south-2", "cn-southwest-2",
        "eu-west-0", "la-north-2", "la-south-2", "me-east-1", "my-kualalumpur-1",
        "na-mexico-1", "ru-moscow-1", "sa-brazil-1", "tr-west-1",
    }
)  # fmt: skip


class RegionError(ValueError):
    """A region or endpoint that cannot be used. `variable` is the environment variable at fault when
    it is an override; otherwise the region id is (whoever named it: CBR_REGION, a request)."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


def known_regions() -> frozenset[str]:
    """The regions CBR has an endpoint in, without any override."""
    return CBR_REGIONS


def reachable_regions(environ: Mapping[str, str]) -> frozenset[str]:
    """The regions CBR can be reached in: the SDK's, and every region with an endpoint override in
    `environ` (`HUAWEICLOUD_SDK_REGION_CBR_AP_SOUTHEAST_9` names `ap-southeast-9`).

    Raises RegionError (naming the variable) for an override whose name is no region id.
    """
    regions = set(CBR_REGIONS)
    for variable, value in environ.items():
        if not variable.startswith(CBR_ENDPOINT_OVERRIDE_PREFIX) or not value.strip():
            continue
        region = variable.removeprefix(CBR_ENDPOINT_OVERRIDE_PREFIX).lower().replace("_", "-")
        try:
            regions.add(check_region_id(region))
        except RegionError as error:
            raise RegionError(f"does not name a region: the region id {error}", variable=variable) from None
    return frozenset(regions)


def check_region_id(region: str) -> str:
    """The region id, if it has the shape of one (it becomes part of a host name)."""
    if len(region) > MAX_REGION_ID_LENGTH or not REGION_ID_PATTERN.fullmatch(region):
        raise RegionError(
            "must be a region id: lower-case words joined by '-', e.g. cn-north-4 (it becomes a host name)"
        )
    return region


def cbr_override_variable(region: str) -> str:
    """The SDK's variable that overrides the CBR endpoint of `region`."""
    return CBR_ENDPOINT_OVERRIDE_PREFIX + region.upper().replace("-", "_")


def cbr_endpoint(region: str, environ: Mapping[str, str]) -> str:
    """The CBR base URL of `region`: its override in `environ`, else the SDK's endpoint.

    Raises RegionError for a malformed region id, a region without either, or an unsafe override.
    """
    check_region_id(region)
    variable = cbr_override_variable(region)
    override = environ.get(variable, "").split(",")[0].strip()
    if override:
        try:
            return safe_endpoint(override)
        except RegionError as error:
            raise RegionError(str(error), variable=variable) from None
    if region not in CBR_REGIONS:
        raise RegionError(f"unknown region {region!r}: CBR has no endpoint there (set {variable} to one)")
    return f"https://cbr.{region}.myhuaweicloud.com"


def iam_endpoint(region: str | None, environ: Mapping[str, str]) -> str:
    """The IAM base URL for `region`: HUAWEICLOUD_SDK_IAM_ENDPOINT, else the region's own IAM endpoint,
    else the global one. Raises RegionError for a malformed region id or an unsafe override."""
    override = environ.get(IAM_ENDPOINT_OVERRIDE, "").strip()
    if override:
        try:
            return safe_endpoint(override)
        except RegionError as error:
            raise RegionError(str(error), variable=IAM_ENDPOINT_OVERRIDE) from None
    if region is not None and check_region_id(region) in IAM_REGIONS:
        return f"https://iam.{region}.myhuaweicloud.com"
    return GLOBAL_IAM_ENDPOINT


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return len(host) <= 253 and HOST_PATTERN.fullmatch(host) is not None
    return True


def safe_endpoint(url: str) -> str:
    """`url` without a trailing '/', if it is an https URL (plain http only on loopback) with a valid
    host, and no credentials, query or fragment. The message never repeats the URL (it may hold a
    password)."""
    if any(character.isspace() or not character.isprintable() for character in url):
        raise RegionError("must be a URL without spaces or control characters")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host or not _is_host(host):
        raise RegionError("must be an https:// URL with a host name")
    if parts.scheme == "http" and not _is_loopback(host):
        raise RegionError("must be an https:// URL (plain http is allowed only on loopback)")
    if "@" in parts.netloc:
        raise RegionError("must not carry a user name or password")
    if "?" in url or "#" in url:
        raise RegionError("must not have a query or fragment")
    try:
        _ = parts.port
    except ValueError:
        raise RegionError("has an invalid port") from None
    return url.rstrip("/")
