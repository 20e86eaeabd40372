"""Settings are parsed once from the environment; mistakes name the variable; secrets stay hidden."""

from __future__ import annotations

import pytest

from cbr_checkpointer.settings import ConfigurationError, Settings


def test_defaults_follow_the_design() -> None:
    settings = Settings.from_env({"CBR_REGION": "cn-north-4"})

    assert settings.cbr_endpoint == "https://cbr.cn-north-4.myhuaweicloud.com"
    assert settings.iam_endpoint == "https://iam.myhuaweicloud.com"
    assert settings.event_bus_name == "default"
    assert settings.event_source == "cbr.checkpointer"
    assert settings.max_concurrency == 10
    assert settings.dry_run is False


def test_a_missing_region_and_endpoint_is_named() -> None:
    with pytest.raises(ConfigurationError, match="CBR_REGION"):
        Settings.from_env({})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CBR_ENDPOINT", "http://cbr.example.com"),
        ("HUAWEICLOUD_SDK_IAM_ENDPOINT", "ftp://iam.example.com"),
        ("AWS_ENDPOINT_URL", "http://10.0.0.5:4566"),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://192.168.1.1"),
        ("MAX_CONCURRENCY", "0"),
        ("MAX_CONCURRENCY", "many"),
        ("DRY_RUN", "perhaps"),
        ("HUAWEICLOUD_SDK_PROJECT_ID", "../other-project"),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env({"CBR_REGION": "cn-north-4", variable: value})


def test_plain_http_is_allowed_only_on_loopback() -> None:
    settings = Settings.from_env(
        {"CBR_ENDPOINT": "http://127.0.0.1:8080/", "AWS_ENDPOINT_URL": "http://localhost:5000"}
    )

    assert settings.cbr_endpoint == "http://127.0.0.1:8080"
    assert settings.aws_endpoint("events") == "http://localhost:5000"


def test_service_specific_aws_endpoint_wins_over_the_general_one() -> None:
    settings = Settings.from_env(
        {
            "CBR_REGION": "cn-north-4",
            "AWS_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
            "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2",
        }
    )

    assert settings.aws_endpoint("dynamodb") == "http://127.0.0.1:2"
    assert settings.aws_endpoint("events") == "http://127.0.0.1:1"
    assert Settings.from_env({"CBR_REGION": "x", "AWS_REGION": "eu-west-1"}).aws_endpoint("events") == (
        "https://events.eu-west-1.amazonaws.com"
    )


def test_secrets_never_show_in_repr_or_errors() -> None:
    settings = Settings.from_env(
        {
            "CBR_REGION": "cn-north-4",
            "HUAWEICLOUD_SDK_SK": "sk-very-secret",
            "AWS_SECRET_ACCESS_KEY": "aws-very-secret",
        }
    )

    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings.model_dump())
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({"CBR_ENDPOINT": "http://cbr.example.com", "HUAWEICLOUD_SDK_SK": "sk-very-secret"})
    assert "very-secret" not in str(raised.value)


def test_lambda_must_name_its_ledger_table() -> None:
    # Given an environment that is a Lambda function (Lambda sets AWS_LAMBDA_FUNCTION_NAME)
    lambda_env = {"CBR_REGION": "cn-north-4", "AWS_LAMBDA_FUNCTION_NAME": "cbr-checkpointer"}

    # Then the in-memory default is refused, and an explicit choice is accepted
    with pytest.raises(ConfigurationError, match="IDEMPOTENCY_TABLE"):
        Settings.from_env(lambda_env)
    assert Settings.from_env(lambda_env | {"IDEMPOTENCY_TABLE": "ledger"}).idempotency_table == "ledger"
    assert Settings.from_env(lambda_env | {"IDEMPOTENCY_TABLE": "memory"}).idempotency_table == "memory"
    assert Settings.from_env({"CBR_REGION": "cn-north-4"}).idempotency_table == "memory"


def test_allowed_project_ids_are_a_comma_separated_list_of_project_ids() -> None:
    base = {"CBR_REGION": "cn-north-4", "HUAWEICLOUD_SDK_PROJECT_ID": "p0"}

    assert Settings.from_env(base).allowed_project_ids == frozenset()
    listed = Settings.from_env(base | {"ALLOWED_PROJECT_IDS": "p0, p1,,p2"})
    assert listed.allowed_project_ids == frozenset({"p0", "p1", "p2"})
    for bad in (",", "p0,../v3", "p 1"):
        with pytest.raises(ConfigurationError, match="ALLOWED_PROJECT_IDS"):
            Settings.from_env(base | {"ALLOWED_PROJECT_IDS": bad})


def test_the_runtime_hands_the_allowed_projects_and_the_region_to_the_request_parser() -> None:
    from cbr_checkpointer.runtime import build_runtime

    base = {
        "CBR_REGION": "cn-north-4",
        "HUAWEICLOUD_SDK_PROJECT_ID": "p0",
        "HUAWEICLOUD_SDK_AK": "AK",
        "HUAWEICLOUD_SDK_SK": "SK",
        "AWS_ACCESS_KEY_ID": "AKIA",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "DRY_RUN": "true",
    }
    runtime = build_runtime(Settings.from_env(base | {"ALLOWED_PROJECT_IDS": "p1"}))
    try:
        defaults = runtime.defaults
        assert (defaults.project_id, defaults.dry_run) == ("p0", True)
        assert defaults.allowed_project_ids == frozenset({"p1"})
        assert defaults.regions == frozenset({"cn-north-4"})
        assert defaults.allows_project("p1")
        assert not defaults.allows_project("p0")
    finally:
        runtime.close()
