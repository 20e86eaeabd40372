"""Configuration, read from the environment once per execution environment into one frozen model."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from cbr_checkpointer.models import PROJECT_ID_PATTERN
from cbr_checkpointer.regions import (
    GLOBAL_IAM_ENDPOINT,
    RegionError,
    cbr_endpoint,
    check_region_id,
    iam_endpoint,
    safe_endpoint,
)

# Environment variable -> Settings field. The Huawei SDK's own names are used where they exist.
ENVIRONMENT: dict[str, str] = {
    "CBR_REGION": "cbr_region",
    "CBR_ENDPOINT": "cbr_endpoint",
    "CBR_READ_TIMEOUT_SECONDS": "cbr_read_timeout_seconds",
    "HUAWEICLOUD_SDK_IAM_ENDPOINT": "iam_endpoint",
    "HUAWEICLOUD_SDK_PROJECT_ID": "project_id",
    "ALLOWED_PROJECT_IDS": "allowed_project_ids",
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
    "DEFAULT_VAULT_ID": "default_vault_id",
    "MAX_CONCURRENCY": "max_concurrency",
    "DRY_RUN": "dry_run",
    "AWS_REGION": "aws_region",
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_ENDPOINT_URL": "aws_endpoint_url",
}
FIELD_TO_VARIABLE = {field: variable for variable, field in ENVIRONMENT.items()}

# Signing name -> the service id used in AWS_ENDPOINT_URL_<SERVICE> (the AWS SDKs' convention).
AWS_SERVICE_ENV_IDS: dict[str, str] = {
    "events": "EVENTBRIDGE",
    "dynamodb": "DYNAMODB",
    "secretsmanager": "SECRETS_MANAGER",
    "sqs": "SQS",
}


class ConfigurationError(ValueError):
    """The environment does not describe a usable configuration; the message names the variable."""


class Settings(BaseModel):
    """Everything the function needs from its environment. Secrets are SecretStr and never printed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cbr_region: str | None = None
    cbr_endpoint: str
    cbr_read_timeout_seconds: float = Field(default=30.0, gt=0, le=900)
    iam_endpoint: str = GLOBAL_IAM_ENDPOINT
    project_id: str | None = None
    # The projects requests may act on; empty: the default project alone.
    allowed_project_ids: frozenset[str] = frozenset()
    huawei_ak: SecretStr | None = None
    huawei_sk: SecretStr | None = None
    huawei_security_token: SecretStr | None = None
    credentials_secret: str | None = None
    # Port of the AWS Parameters and Secrets Lambda Extension (the layer reads the same variable).
    secrets_extension_port: int = Field(default=2773, ge=1, le=65535)
    event_bus_name: str = "default"
    event_source: str = "cbr.checkpointer"
    idempotency_table: str = "memory"
    idempotency_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    watch_queue_url: str | None = None
    # How long a checkpoint is followed (from when it was first reported created) before Timed Out.
    watch_max_age_seconds: float = Field(default=24 * 3600, gt=0, le=14 * 24 * 3600)
    default_vault_id: str | None = None
    max_concurrency: int = Field(default=10, ge=1, le=100)
    dry_run: bool = False
    aws_region: str = "us-east-1"
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    aws_endpoint_url: str | None = None
    aws_service_endpoints: dict[str, str] = Field(default_factory=dict)

    @field_validator("project_id")
    @classmethod
    def _project_id_fits_a_url_path(cls, project_id: str | None) -> str | None:
        if project_id is not None and not PROJECT_ID_PATTERN.fullmatch(project_id):
            raise ValueError("must be 1-64 letters, digits, '_' or '-' (it goes into the CBR URL path)")
        return project_id

    @field_validator("cbr_region")
    @classmethod
    def _region_fits_a_host_name(cls, region: str | None) -> str | None:
        return None if region is None else _valid(check_region_id, region)

    @field_validator("allowed_project_ids", mode="before")
    @classmethod
    def _allowed_project_ids_are_project_ids(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        project_ids = frozenset(part.strip() for part in value.split(",") if part.strip())
        if not project_ids or not all(PROJECT_ID_PATTERN.fullmatch(project_id) for project_id in project_ids):
            raise ValueError("must be project ids (1-64 letters, digits, '_' or '-') separated by commas")
        return project_ids

    @field_validator("cbr_endpoint", "iam_endpoint")
    @classmethod
    def _endpoint_is_safe(cls, url: str) -> str:
        return _valid(safe_endpoint, url)

    @field_validator("aws_endpoint_url", "watch_queue_url")
    @classmethod
    def _aws_endpoint_is_safe(cls, url: str | None) -> str | None:
        return None if url is None else _valid(safe_endpoint, url)

    @field_validator("aws_service_endpoints")
    @classmethod
    def _aws_service_endpoints_are_safe(cls, endpoints: dict[str, str]) -> dict[str, str]:
        safe = {}
        for service, url in endpoints.items():
            try:
                safe[service] = safe_endpoint(url)
            except RegionError as error:
                raise ValueError(f"AWS_ENDPOINT_URL_{AWS_SERVICE_ENV_IDS[service]} {error}") from None
        return safe

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        values: dict[str, Any] = {
            field: environ[variable] for variable, field in ENVIRONMENT.items() if environ.get(variable)
        }
        values.setdefault("aws_region", environ.get("AWS_DEFAULT_REGION") or "us-east-1")
        if "idempotency_table" not in values and environ.get("AWS_LAMBDA_FUNCTION_NAME"):
            # In memory, a key is only remembered by one execution environment: a redelivery that lands
            # on another one would create a second restore point. Lambda must be told explicitly.
            raise ConfigurationError(
                "IDEMPOTENCY_TABLE is required in Lambda: the DynamoDB ledger table "
                "(or 'memory' to accept deduplication within one execution environment only)"
            )
        region = values.get("cbr_region")
        try:
            if "cbr_endpoint" not in values:
                if not region:
                    raise ConfigurationError("set CBR_REGION (or CBR_ENDPOINT) to reach Huawei CBR")
                values["cbr_endpoint"] = cbr_endpoint(region, environ)
            values["iam_endpoint"] = iam_endpoint(region, environ)
        except RegionError as error:
            variable = error.variable or "CBR_REGION"
            raise ConfigurationError(f"invalid configuration: {variable}: {error}") from None
        values["aws_service_endpoints"] = {
            service: environ[f"AWS_ENDPOINT_URL_{env_id}"]
            for service, env_id in AWS_SERVICE_ENV_IDS.items()
            if environ.get(f"AWS_ENDPOINT_URL_{env_id}")
        }
        try:
            return cls(**values)
        except ValidationError as error:
            problems = []
            for detail in error.errors(include_input=False, include_url=False):
                field = str(detail["loc"][0]) if detail["loc"] else "?"
                variable = FIELD_TO_VARIABLE.get(field, "AWS_ENDPOINT_URL_<SERVICE>")
                problems.append(f"{variable}: {detail['msg']}")
            raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None

    def aws_endpoint(self, service: str) -> str:
        """The base URL for an AWS service, honouring AWS_ENDPOINT_URL_<SERVICE> then AWS_ENDPOINT_URL."""
        override = self.aws_service_endpoints.get(service) or self.aws_endpoint_url
        if override:
            return override
        return f"https://{service}.{self.aws_region}.amazonaws.com"


def _valid(check: Callable[[str], str], value: str) -> str:
    """`check(value)`, its RegionError as the ValueError pydantic reports by field."""
    try:
        return check(value)
    except RegionError as error:
        raise ValueError(str(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this execution environment, parsed on first use (never at import)."""
    return Settings.from_env(os.environ)
