"""Settings are parsed once from the environment; mistakes name the variable; secrets stay hidden."""

from __future__ import annotations

import pytest

from cbr_checkpointer.settings import ConfigurationError, Settings


def test_defaults_follow_the_design() -> None:
    settings = Settings.from_env({"CBR_REGION": "cn-north-4"})

    assert settings.cbr_endpoint == "https://cbr.cn-north-4.myhuaweicloud.com"
    assert settings.iam_endpoint == "https://iam.cn-north-4.myhuaweicloud.com"
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
    elsewhere = Settings.from_env({"CBR_REGION": "cn-north-4", "AWS_REGION": "eu-west-1"})
    assert elsewhere.aws_endpoint("events") == "https://events.eu-west-1.amazonaws.com"


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


# -- what becomes a host name ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "region",
    [
        "evil.example#",
        "cn-north-4.evil.example",
        "cn-north-4/",
        "CN-NORTH-4",
        "cn_north_4",
        "cn",
        "4-north-cn",
        "cn-north-4 ",
        "cn-" + "a" * 70,
    ],
)
def test_a_region_that_is_not_a_region_id_is_refused_at_start(region: str) -> None:
    with pytest.raises(ConfigurationError, match=r"CBR_REGION: .*must be a region id"):
        Settings.from_env({"CBR_REGION": region})


def test_a_bad_region_is_refused_even_with_an_explicit_endpoint() -> None:
    with pytest.raises(ConfigurationError, match="CBR_REGION"):
        Settings.from_env({"CBR_REGION": "evil.example#", "CBR_ENDPOINT": "https://cbr.example.com"})


def test_a_region_unknown_to_the_sdk_needs_its_override() -> None:
    with pytest.raises(ConfigurationError, match="CBR_REGION: unknown region 'xx-private-7'") as raised:
        Settings.from_env({"CBR_REGION": "xx-private-7"})
    assert "HUAWEICLOUD_SDK_REGION_CBR_XX_PRIVATE_7" in str(raised.value)

    settings = Settings.from_env(
        {"CBR_REGION": "xx-private-7", "HUAWEICLOUD_SDK_REGION_CBR_XX_PRIVATE_7": "https://cbr.private.test/"}
    )
    assert settings.cbr_endpoint == "https://cbr.private.test"
    assert settings.iam_endpoint == "https://iam.myhuaweicloud.com"


def test_the_sdk_region_override_wins_over_the_table_and_cbr_endpoint_over_both() -> None:
    environ = {
        "CBR_REGION": "cn-north-4",
        "HUAWEICLOUD_SDK_REGION_CBR_CN_NORTH_4": "https://cbr-a.example.com, https://cbr-b.example.com",
    }
    assert Settings.from_env(environ).cbr_endpoint == "https://cbr-a.example.com"
    explicit = environ | {"CBR_ENDPOINT": "https://cbr.example.org"}
    assert Settings.from_env(explicit).cbr_endpoint == "https://cbr.example.org"


def test_the_iam_endpoint_follows_the_region_unless_set() -> None:
    assert (
        Settings.from_env({"CBR_REGION": "eu-west-0"}).iam_endpoint
        == "https://iam.eu-west-0.myhuaweicloud.com"
    )
    # A CBR region the SDK's IAM table lacks uses the global endpoint.
    assert Settings.from_env({"CBR_REGION": "cn-north-11"}).iam_endpoint == "https://iam.myhuaweicloud.com"
    assert Settings.from_env({"CBR_ENDPOINT": "https://cbr.example.org"}).iam_endpoint == (
        "https://iam.myhuaweicloud.com"
    )
    environ = {"CBR_REGION": "eu-west-0", "HUAWEICLOUD_SDK_IAM_ENDPOINT": "https://iam.example.org/"}
    assert Settings.from_env(environ).iam_endpoint == "https://iam.example.org"


@pytest.mark.parametrize(
    ("variable", "url", "problem"),
    [
        ("CBR_ENDPOINT", "https://user:hunter2-secret@cbr.example.com", "user name or password"),
        ("CBR_ENDPOINT", "https://cbr.example.com/?host=evil", "query or fragment"),
        ("CBR_ENDPOINT", "https://cbr.example.com#", "query or fragment"),
        ("CBR_ENDPOINT", "https://cbr.exa mple.com", "spaces"),
        ("CBR_ENDPOINT", "https://cbr.example.com:99999", "port"),
        ("CBR_ENDPOINT", "https://cbr_example!.com", "host name"),
        ("CBR_ENDPOINT", "https://", "host name"),
        ("HUAWEICLOUD_SDK_IAM_ENDPOINT", "https://iam.example.com?x=hunter2-secret", "query or fragment"),
        ("HUAWEICLOUD_SDK_IAM_ENDPOINT", "http://iam.example.com", "only on loopback"),
        ("HUAWEICLOUD_SDK_REGION_CBR_CN_NORTH_4", "http://cbr.example.com", "only on loopback"),
        ("HUAWEICLOUD_SDK_REGION_CBR_CN_NORTH_4", "https://a:hunter2-secret@cbr.example.com", "password"),
        ("WATCH_QUEUE_URL", "https://sqs.example.com/1/q#frag", "query or fragment"),
    ],
)
def test_an_unsafe_endpoint_is_refused_naming_its_variable_and_not_echoed(
    variable: str, url: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=rf"{variable}:? .*{problem}") as raised:
        Settings.from_env({"CBR_REGION": "cn-north-4", variable: url})
    assert "hunter2" not in str(raised.value)


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
