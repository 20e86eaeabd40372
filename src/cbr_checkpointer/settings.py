"""Configuration, read from the environment once per execution environment into one frozen value class.

The environment is parsed by hand, one small parser per kind of value, rather than by a pydantic model:
as a model, this module's import built a validation schema that cost ~35M instructions, some 3% of the
function's init, for some thirty strings read once per execution environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache

from pydantic import SecretStr

from cbr_checkpointer.cbr.credentials import control_character_in
from cbr_checkpointer.models import PROJECT_ID_PATTERN
from cbr_checkpointer.regions import (
    RegionError,
    cbr_endpoint,
    check_region_id,
    iam_endpoint,
    reachable_regions,
    safe_endpoint,
)
from cbr_checkpointer.values import value

# Environment variable -> Settings field. The Huawei SDK's own names are used where they exist.
ENVIRONMENT: dict[str, str] = {
    "CBR_REGION": "cbr_region",
    "CBR_ENDPOINT": "cbr_endpoint",
    "CBR_READ_TIMEOUT_SECONDS": "cbr_read_timeout_seconds",
    "HUAWEICLOUD_SDK_IAM_ENDPOINT": "iam_endpoint",
    "HUAWEICLOUD_SDK_PROJECT_ID": "project_id",
    "ALLOWED_PROJECT_IDS": "allowed_project_ids",
    "ALLOWED_REGIONS": "allowed_regions",
    "HUAWEICLOUD_SDK_AK": "huawei_ak",
    "HUAWEICLOUD_SDK_SK": "huawei_sk",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN": "huawei_security_token",
    "CBR_CREDENTIALS_SECRET": "credentials_secret",
    "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": "secrets_extension_port",
    "EVENT_BUS_NAME": "event_bus_name",
    "EVENT_SOURCE": "event_source",
    "IDEMPOTENCY_TABLE": "idempotency_table",
    "IDEMPOTENCY_TTL_SECONDS": "idempotency_ttl_seconds",
    "WATCH_QUEUE_URL": "watch_queue_url",
    "WATCH_MAX_AGE_SECONDS": "watch_max_age_seconds",
    "REQUEST_QUEUE_URL": "request_queue_url",
    "FANOUT_INLINE_MAX": "fanout_inline_max",
    "DEFAULT_VAULT_ID": "default_vault_id",
    "MAX_CONCURRENCY": "max_concurrency",
    "DRY_RUN": "dry_run",
    "AWS_REGION": "aws_region",
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_ENDPOINT_URL": "aws_endpoint_url",
}

# Signing name -> the service id used in AWS_ENDPOINT_URL_<SERVICE> (the AWS SDKs' convention).
AWS_SERVICE_ENV_IDS: dict[str, str] = {
    "events": "EVENTBRIDGE",
    "dynamodb": "DYNAMODB",
    "secretsmanager": "SECRETS_MANAGER",
    "sqs": "SQS",
}

# The integer forms accepted (pydantic's lax ones, kept so no deployed value changes meaning): ASCII digits,
# '_' between digits, an optional sign and an optional fraction of zeros ("10", "+1_000", "10.0").
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9](?:_?[0-9])*(?:\.0+)?", re.ASCII)
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


class ConfigurationError(ValueError):
    """The environment does not describe a usable configuration; the message names the variable."""


@value
class RegionEndpoints:
    """Where one region's CBR and IAM are reached."""

    cbr: str
    iam: str


@value
class Settings:
    """Everything the function needs from its environment. Secrets are SecretStr and never printed.

    Built by `from_env`, which holds every variable's default and rule.
    """

    cbr_endpoint: str
    cbr_region: str | None
    cbr_read_timeout_seconds: float
    iam_endpoint: str
    # Every region a request may name -> its CBR and IAM base URLs, resolved once at start.
    region_endpoints: dict[str, RegionEndpoints]
    # The regions requests may name; empty: every one in region_endpoints.
    allowed_regions: frozenset[str]
    project_id: str | None
    # The projects requests may act on; empty: the default project alone.
    allowed_project_ids: frozenset[str]
    huawei_ak: SecretStr | None
    huawei_sk: SecretStr | None
    huawei_security_token: SecretStr | None
    credentials_secret: str | None
    # Port of the AWS Parameters and Secrets Lambda Extension (the layer reads the same variable).
    secrets_extension_port: int
    event_bus_name: str
    event_source: str
    idempotency_table: str
    idempotency_ttl_seconds: int
    watch_queue_url: str | None
    # How long a checkpoint is followed (from when it was first reported created) before Timed Out.
    watch_max_age_seconds: float
    # Where a selection of more than `fanout_inline_max` vaults sends its vaults' requests.
    request_queue_url: str | None
    fanout_inline_max: int
    default_vault_id: str | None
    max_concurrency: int
    dry_run: bool
    aws_region: str
    aws_access_key_id: SecretStr | None
    aws_secret_access_key: SecretStr | None
    aws_session_token: SecretStr | None
    aws_endpoint_url: str | None
    aws_service_endpoints: dict[str, str]

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """The settings `environ` describes. An unset or empty variable takes its default.

        Raises ConfigurationError naming every variable at fault, what is wrong and what is accepted;
        it never repeats a value (a URL or a credential may hold a secret).
        """
        read = _Reader(environ)
        if not read.text("IDEMPOTENCY_TABLE") and environ.get("AWS_LAMBDA_FUNCTION_NAME"):
            # In memory, a key is only remembered by one execution environment: a redelivery that lands
            # on another one would create a second restore point. Lambda must be told explicitly.
            read.refuse(
                "IDEMPOTENCY_TABLE",
                "is required in Lambda: the DynamoDB ledger table "
                "(or 'memory' to accept deduplication within one execution environment only)",
            )
        region = read.region("CBR_REGION")
        regions = read.reachable_regions()
        allowed_regions = read.region_ids("ALLOWED_REGIONS")
        unreachable = sorted(allowed_regions - regions - {region}) if regions is not None else []
        if unreachable:
            read.refuse(
                "ALLOWED_REGIONS",
                f"names {', '.join(unreachable)}, which CBR has no endpoint in "
                "(set HUAWEICLOUD_SDK_REGION_CBR_<REGION_ID> for a region the SDK does not know)",
            )
        settings = cls(
            cbr_endpoint=read.cbr_endpoint(region),
            cbr_region=region,
            cbr_read_timeout_seconds=read.number("CBR_READ_TIMEOUT_SECONDS", 30.0, above=0, at_most=900),
            iam_endpoint=read.iam_endpoint_of(region),
            region_endpoints={
                reachable: RegionEndpoints(
                    cbr=read.cbr_endpoint_of(reachable), iam=read.iam_endpoint_of(reachable)
                )
                for reachable in sorted(regions or ())
            },
            allowed_regions=allowed_regions,
            project_id=read.project_id("HUAWEICLOUD_SDK_PROJECT_ID"),
            allowed_project_ids=read.project_ids("ALLOWED_PROJECT_IDS"),
            huawei_ak=read.secret("HUAWEICLOUD_SDK_AK"),
            huawei_sk=read.secret("HUAWEICLOUD_SDK_SK"),
            huawei_security_token=read.secret("HUAWEICLOUD_SDK_SECURITY_TOKEN"),
            credentials_secret=read.text("CBR_CREDENTIALS_SECRET"),
            secrets_extension_port=read.integer(
                "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", 2773, at_least=1, at_most=65535
            ),
            event_bus_name=read.text("EVENT_BUS_NAME") or "default",
            event_source=read.text("EVENT_SOURCE") or "cbr.checkpointer",
            idempotency_table=read.text("IDEMPOTENCY_TABLE") or "memory",
            idempotency_ttl_seconds=read.integer("IDEMPOTENCY_TTL_SECONDS", 7 * 24 * 3600, at_least=60),
            watch_queue_url=read.endpoint("WATCH_QUEUE_URL"),
            watch_max_age_seconds=read.number(
                "WATCH_MAX_AGE_SECONDS", 24 * 3600.0, above=0, at_most=14 * 24 * 3600
            ),
            request_queue_url=read.endpoint("REQUEST_QUEUE_URL"),
            # Default: one SendMessageBatch's worth, run in one round at MAX_CONCURRENCY's default.
            fanout_inline_max=read.integer("FANOUT_INLINE_MAX", 10, at_least=0, at_most=1000),
            default_vault_id=read.text("DEFAULT_VAULT_ID"),
            max_concurrency=read.integer("MAX_CONCURRENCY", 10, at_least=1, at_most=100),
            dry_run=read.flag("DRY_RUN", default=False),
            aws_region=read.text("AWS_REGION") or read.text("AWS_DEFAULT_REGION") or "us-east-1",
            aws_access_key_id=read.secret("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=read.secret("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=read.secret("AWS_SESSION_TOKEN"),
            aws_endpoint_url=read.endpoint("AWS_ENDPOINT_URL"),
            aws_service_endpoints={
                service: url
                for service, env_id in AWS_SERVICE_ENV_IDS.items()
                if (url := read.endpoint(f"AWS_ENDPOINT_URL_{env_id}"))
            },
        )
        if read.problems:
            problems = "; ".join(f"{variable}: {reason}" for variable, reason in read.problems.items())
            raise ConfigurationError(f"invalid configuration: {problems}")
        return settings

    def request_regions(self) -> frozenset[str]:
        """The regions a request may name: ALLOWED_REGIONS, else every reachable one."""
        if self.allowed_regions:
            return self.allowed_regions
        return frozenset(self.region_endpoints) | ({self.cbr_region} if self.cbr_region else frozenset())

    def aws_endpoint(self, service: str) -> str:
        """The base URL for an AWS service, honouring AWS_ENDPOINT_URL_<SERVICE> then AWS_ENDPOINT_URL."""
        override = self.aws_service_endpoints.get(service) or self.aws_endpoint_url
        if override:
            return override
        return f"https://{service}.{self.aws_region}.amazonaws.com"


class _Reader:
    """Typed reads of an environment that note what is wrong with each variable and go on, so one
    error can name every problem. A refused variable reads as its default (or None); `problems` says
    the result must not be used."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        # Variable -> why it is refused; the first reason found for a variable is the one reported.
        self.problems: dict[str, str] = {}

    def refuse(self, variable: str, reason: str) -> None:
        self.problems.setdefault(variable, reason)

    def text(self, variable: str) -> str | None:
        """The variable's value as it is; None when unset or empty."""
        return self._environ.get(variable) or None

    def secret(self, variable: str) -> SecretStr | None:
        value = self.text(variable)
        if value is None:
            return None
        if control_character_in(value):
            self.refuse(
                variable, "holds a control character (a trailing newline?); no HTTP header may carry one"
            )
        return SecretStr(value)

    def integer(self, variable: str, default: int, *, at_least: int, at_most: int | None = None) -> int:
        accepted = f"from {at_least} to {at_most}" if at_most is not None else f"of at least {at_least}"
        value = self.text(variable)
        if value is None:
            return default
        digits = value.strip()
        if _WHOLE_NUMBER.fullmatch(digits):
            try:
                number = int(digits.partition(".")[0])
            except ValueError:  # more digits than Python converts
                pass
            else:
                if number >= at_least and (at_most is None or number <= at_most):
                    return number
        self.refuse(variable, f"must be a whole number {accepted}")
        return default

    def number(self, variable: str, default: float, *, above: float, at_most: float) -> float:
        value = self.text(variable)
        if value is None:
            return default
        try:
            # Non-ASCII digits, which float() would take, are refused.
            number = float(value) if value.isascii() else None
        except ValueError:
            number = None
        # Written so that NaN, which compares false with everything, is refused.
        if number is not None and above < number <= at_most:
            return number
        self.refuse(variable, f"must be a number greater than {above:.15g} and at most {at_most:.15g}")
        return default

    def flag(self, variable: str, *, default: bool) -> bool:
        value = self.text(variable)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        self.refuse(variable, "must be true or false (or, in any case, 1/0, yes/no, y/n, on/off, t/f)")
        return default

    def project_id(self, variable: str) -> str | None:
        project_id = self.text(variable)
        if project_id is not None and not PROJECT_ID_PATTERN.fullmatch(project_id):
            self.refuse(variable, "must be 1-64 letters, digits, '_' or '-' (it goes into the CBR URL path)")
            return None
        return project_id

    def project_ids(self, variable: str) -> frozenset[str]:
        """A comma-separated list of project ids; empty parts are skipped."""
        project_ids = self._list(variable)
        if project_ids is None:
            return frozenset()
        if not project_ids or not all(PROJECT_ID_PATTERN.fullmatch(project_id) for project_id in project_ids):
            self.refuse(
                variable, "must be project ids (1-64 letters, digits, '_' or '-') separated by commas"
            )
            return frozenset()
        return project_ids

    def region(self, variable: str) -> str | None:
        region = self.text(variable)
        if region is None:
            return None
        try:
            return check_region_id(region)
        except RegionError as error:
            self.refuse(variable, str(error))
            return None

    def region_ids(self, variable: str) -> frozenset[str]:
        """A comma-separated list of region ids; empty parts are skipped."""
        regions = self._list(variable)
        if regions is None:
            return frozenset()
        if not regions:
            self.refuse(variable, "must be region ids separated by commas")
            return frozenset()
        for region in sorted(regions):
            try:
                check_region_id(region)
            except RegionError as error:
                self.refuse(variable, str(error))
                return frozenset()
        return regions

    def reachable_regions(self) -> frozenset[str] | None:
        """Every region CBR can be reached in, counting the endpoint overrides of the environment; None
        when an override's name is no region id."""
        try:
            return reachable_regions(self._environ)
        except RegionError as error:
            self.refuse(error.variable or "HUAWEICLOUD_SDK_REGION_CBR_<REGION_ID>", str(error))
            return None

    def endpoint(self, variable: str) -> str | None:
        url = self.text(variable)
        if url is None:
            return None
        try:
            return safe_endpoint(url)
        except RegionError as error:
            self.refuse(variable, str(error))
            return None

    def cbr_endpoint(self, region: str | None) -> str:
        """CBR_ENDPOINT, else the endpoint of the region CBR_REGION names."""
        if self.text("CBR_ENDPOINT") is not None:
            return self.endpoint("CBR_ENDPOINT") or ""
        if region is None:
            if "CBR_REGION" not in self.problems:
                self.refuse("CBR_REGION", "is not set: set CBR_REGION (or CBR_ENDPOINT) to reach Huawei CBR")
            return ""
        return self.cbr_endpoint_of(region)

    def cbr_endpoint_of(self, region: str) -> str:
        try:
            return cbr_endpoint(region, self._environ)
        except RegionError as error:
            return self._charge(error)

    def iam_endpoint_of(self, region: str | None) -> str:
        try:
            return iam_endpoint(region, self._environ)
        except RegionError as error:
            return self._charge(error)

    def _charge(self, error: RegionError) -> str:
        """Refuse the override a failed endpoint lookup names, else CBR_REGION (every other region
        comes from an override or the SDK's table); "" stands for the endpoint."""
        self.refuse(error.variable or "CBR_REGION", str(error))
        return ""

    def _list(self, variable: str) -> frozenset[str] | None:
        value = self.text(variable)
        if value is None:
            return None
        return frozenset(part.strip() for part in value.split(",") if part.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this execution environment, parsed on first use (never at import)."""
    return Settings.from_env(os.environ)
