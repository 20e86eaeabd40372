"""Settings are parsed once from the environment; mistakes name the variable; secrets stay hidden."""

from __future__ import annotations

import pytest

from cbr_checkpointer.regions import CBR_REGIONS
from cbr_checkpointer.settings import AWS_SERVICE_ENV_IDS, ENVIRONMENT, ConfigurationError, Settings


def test_defaults_derive_the_endpoints_from_the_region() -> None:
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
    assert "very-secret" not in str({name: getattr(settings, name) for name in Settings.__match_args__})
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
    runtime = build_runtime(
        Settings.from_env(base | {"ALLOWED_PROJECT_IDS": "p1", "ALLOWED_REGIONS": "cn-north-4,eu-west-0"})
    )
    try:
        defaults = runtime.defaults
        assert (defaults.project_id, defaults.dry_run) == ("p0", True)
        assert defaults.allowed_project_ids == frozenset({"p1"})
        assert defaults.regions == frozenset({"cn-north-4", "eu-west-0"})
        assert defaults.region == "cn-north-4"
        assert defaults.allows_project("p1")
        assert not defaults.allows_project("p0")
    finally:
        runtime.close()


@pytest.mark.parametrize(
    "variable",
    [
        "HUAWEICLOUD_SDK_AK",
        "HUAWEICLOUD_SDK_SK",
        "HUAWEICLOUD_SDK_SECURITY_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ],
)
@pytest.mark.parametrize("pasted", ["tok-secret-value\n", "tok-secret\r\nvalue", "tok-secret\x00value"])
def test_a_credential_with_a_control_character_is_refused_by_name_and_not_echoed(
    variable: str, pasted: str
) -> None:
    # h11 refuses such a header value in every request; say so at start, naming the variable.
    environment = {"CBR_REGION": "cn-north-4", variable: pasted}

    with pytest.raises(ConfigurationError, match=f"{variable}: .*control character") as caught:
        Settings.from_env(environment)

    assert "tok-secret" not in str(caught.value)
    assert "tok-secret" not in repr(caught.value)


def test_every_region_of_the_sdk_and_every_overridden_one_is_reachable_resolved_at_start() -> None:
    environ = {
        "CBR_REGION": "cn-north-4",
        "HUAWEICLOUD_SDK_REGION_CBR_XX_PRIVATE_7": "https://cbr.private.test/",
        "HUAWEICLOUD_SDK_REGION_CBR_AP_SOUTHEAST_1": "http://127.0.0.1:9001",
    }

    endpoints = Settings.from_env(environ).region_endpoints

    assert set(endpoints) == set(CBR_REGIONS) | {"xx-private-7"}
    assert endpoints["xx-private-7"].cbr == "https://cbr.private.test"
    assert endpoints["xx-private-7"].iam == "https://iam.myhuaweicloud.com"
    assert endpoints["ap-southeast-1"].cbr == "http://127.0.0.1:9001"
    assert endpoints["ap-southeast-1"].iam == "https://iam.ap-southeast-1.myhuaweicloud.com"
    assert endpoints["eu-west-0"].cbr == "https://cbr.eu-west-0.myhuaweicloud.com"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HUAWEICLOUD_SDK_REGION_CBR_EU_WEST_0", "http://cbr.eu-west-0.example.com"),
        ("HUAWEICLOUD_SDK_REGION_CBR_", "https://cbr.example.com"),
        ("HUAWEICLOUD_SDK_REGION_CBR_NOT A REGION", "https://cbr.example.com"),
    ],
)
def test_a_bad_override_of_any_region_fails_at_start_naming_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({"CBR_REGION": "cn-north-4", variable: value})

    assert variable in str(raised.value)


def test_requests_may_name_every_reachable_region_unless_allowed_regions_narrows_them() -> None:
    environ = {
        "CBR_REGION": "cn-north-4",
        "HUAWEICLOUD_SDK_REGION_CBR_XX_PRIVATE_7": "https://cbr.private.test",
    }

    assert Settings.from_env(environ).request_regions() == CBR_REGIONS | {"xx-private-7"}
    narrowed = Settings.from_env(environ | {"ALLOWED_REGIONS": " xx-private-7, eu-west-0 "})
    assert narrowed.request_regions() == {"xx-private-7", "eu-west-0"}


@pytest.mark.parametrize("value", ["cn-north-4,xx-nowhere-1", "cn-north-4.evil.example", " , "])
def test_allowed_regions_must_be_reachable_region_ids(value: str) -> None:
    with pytest.raises(ConfigurationError, match="ALLOWED_REGIONS"):
        Settings.from_env({"CBR_REGION": "cn-north-4", "ALLOWED_REGIONS": value})


# -- one parser per kind of value ------------------------------------------------------------------------

REGION = {"CBR_REGION": "cn-north-4"}


@pytest.mark.parametrize(
    ("variable", "field", "default"),
    [
        ("CBR_READ_TIMEOUT_SECONDS", "cbr_read_timeout_seconds", 30.0),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "secrets_extension_port", 2773),
        ("EVENT_BUS_NAME", "event_bus_name", "default"),
        ("EVENT_SOURCE", "event_source", "cbr.checkpointer"),
        ("IDEMPOTENCY_TABLE", "idempotency_table", "memory"),
        ("IDEMPOTENCY_TTL_SECONDS", "idempotency_ttl_seconds", 7 * 24 * 3600),
        ("WATCH_MAX_AGE_SECONDS", "watch_max_age_seconds", 24 * 3600.0),
        ("FANOUT_INLINE_MAX", "fanout_inline_max", 10),
        ("MAX_CONCURRENCY", "max_concurrency", 10),
        ("DRY_RUN", "dry_run", False),
        ("AWS_REGION", "aws_region", "us-east-1"),
        ("HUAWEICLOUD_SDK_PROJECT_ID", "project_id", None),
        ("ALLOWED_PROJECT_IDS", "allowed_project_ids", frozenset()),
        ("ALLOWED_REGIONS", "allowed_regions", frozenset()),
        ("HUAWEICLOUD_SDK_AK", "huawei_ak", None),
        ("CBR_CREDENTIALS_SECRET", "credentials_secret", None),
        ("WATCH_QUEUE_URL", "watch_queue_url", None),
        ("REQUEST_QUEUE_URL", "request_queue_url", None),
        ("DEFAULT_VAULT_ID", "default_vault_id", None),
        ("AWS_ENDPOINT_URL", "aws_endpoint_url", None),
    ],
)
def test_an_unset_or_empty_variable_takes_its_default(variable: str, field: str, default: object) -> None:
    unset = Settings.from_env(REGION)
    empty = Settings.from_env(REGION | {variable: ""})

    assert getattr(unset, field) == default
    assert getattr(empty, field) == default
    assert type(getattr(empty, field)) is type(default)
    assert empty == unset


def test_an_empty_value_of_every_variable_reads_as_unset() -> None:
    assert Settings.from_env(REGION | dict.fromkeys(set(ENVIRONMENT) - {"CBR_REGION"}, "")) == (
        Settings.from_env(REGION)
    )


def test_the_aws_region_falls_back_to_aws_default_region() -> None:
    assert Settings.from_env(REGION | {"AWS_DEFAULT_REGION": "eu-west-1"}).aws_region == "eu-west-1"
    both = REGION | {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "ap-east-1"}
    assert Settings.from_env(both).aws_region == "ap-east-1"


@pytest.mark.parametrize(
    ("variable", "field", "lowest", "highest"),
    [
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "secrets_extension_port", 1, 65535),
        ("IDEMPOTENCY_TTL_SECONDS", "idempotency_ttl_seconds", 60, None),
        ("FANOUT_INLINE_MAX", "fanout_inline_max", 0, 1000),
        ("MAX_CONCURRENCY", "max_concurrency", 1, 100),
    ],
)
def test_a_whole_number_is_held_to_its_bounds(
    variable: str, field: str, lowest: int, highest: int | None
) -> None:
    accepted = f"from {lowest} to {highest}" if highest is not None else f"of at least {lowest}"
    assert getattr(Settings.from_env(REGION | {variable: str(lowest)}), field) == lowest
    with pytest.raises(ConfigurationError, match=rf"{variable}: must be a whole number {accepted}$"):
        Settings.from_env(REGION | {variable: str(lowest - 1)})
    if highest is not None:
        assert getattr(Settings.from_env(REGION | {variable: str(highest)}), field) == highest
        with pytest.raises(ConfigurationError, match=rf"{variable}: must be a whole number {accepted}$"):
            Settings.from_env(REGION | {variable: str(highest + 1)})


@pytest.mark.parametrize(
    ("value", "number"), [("12", 12), (" 12\n", 12), ("+12", 12), ("1_2", 12), ("12.00", 12)]
)
def test_a_whole_number_may_be_written_as_python_and_pydantic_write_one(value: str, number: int) -> None:
    assert Settings.from_env(REGION | {"MAX_CONCURRENCY": value}).max_concurrency == number


@pytest.mark.parametrize(
    "value", ["12.5", "1e1", "0x10", "1__2", "_12", "12.", "\uff11\uff12", " ", "1" * 5000]
)
def test_a_whole_number_in_another_form_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"MAX_CONCURRENCY: must be a whole number from 1 to 100$"):
        Settings.from_env(REGION | {"MAX_CONCURRENCY": value})


@pytest.mark.parametrize(
    ("variable", "field", "highest", "accepted"),
    [
        ("CBR_READ_TIMEOUT_SECONDS", "cbr_read_timeout_seconds", 900.0, "greater than 0 and at most 900"),
        ("WATCH_MAX_AGE_SECONDS", "watch_max_age_seconds", 1_209_600.0, "greater than 0 and at most 1209600"),
    ],
)
def test_a_number_is_held_to_its_bounds(variable: str, field: str, highest: float, accepted: str) -> None:
    for value, number in ((" 0.5 ", 0.5), ("1e2", 100.0), (str(highest), highest)):
        assert getattr(Settings.from_env(REGION | {variable: value}), field) == number
    for bad in ("0", "-1", f"{highest}1", "nan", "inf", "-inf", "1,5", "\uff10.5", "soon"):
        with pytest.raises(ConfigurationError, match=rf"{variable}: must be a number {accepted}$"):
            Settings.from_env(REGION | {variable: bad})


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        *((spelling, True) for spelling in ("true", "True", "TRUE", "1", "yes", "y", "on", "t")),
        *((spelling, False) for spelling in ("false", "False", "0", "no", "n", "off", "f")),
    ],
)
def test_a_flag_takes_the_usual_spellings_in_any_case(value: str, flag: bool) -> None:
    assert Settings.from_env(REGION | {"DRY_RUN": value}).dry_run is flag


@pytest.mark.parametrize("value", ["perhaps", "2", " true", "true\n", "1.0", "enabled"])
def test_a_flag_in_another_spelling_is_refused_saying_what_is_accepted(value: str) -> None:
    with pytest.raises(
        ConfigurationError, match=r"DRY_RUN: must be true or false \(or, in any case, 1/0, yes/no"
    ):
        Settings.from_env(REGION | {"DRY_RUN": value})


def test_a_project_id_is_refused_naming_its_variable_and_the_accepted_form() -> None:
    longest = "a_B-0" * 12 + "abcd"
    assert Settings.from_env(REGION | {"HUAWEICLOUD_SDK_PROJECT_ID": longest}).project_id == longest
    for bad in ("a" * 65, "p/0", "p0\n"):
        with pytest.raises(
            ConfigurationError, match="HUAWEICLOUD_SDK_PROJECT_ID: must be 1-64 letters, digits"
        ):
            Settings.from_env(REGION | {"HUAWEICLOUD_SDK_PROJECT_ID": bad})


def test_text_is_taken_as_it_is() -> None:
    settings = Settings.from_env(
        REGION
        | {
            "EVENT_BUS_NAME": "bus",
            "EVENT_SOURCE": "my.source",
            "IDEMPOTENCY_TABLE": "ledger",
            "CBR_CREDENTIALS_SECRET": "cbr/credentials",
            "DEFAULT_VAULT_ID": "vault-1",
        }
    )

    assert (settings.event_bus_name, settings.event_source, settings.idempotency_table) == (
        "bus",
        "my.source",
        "ledger",
    )
    assert (settings.credentials_secret, settings.default_vault_id) == ("cbr/credentials", "vault-1")


def test_every_problem_is_named_at_once_and_no_secret_is_repeated() -> None:
    environment = {
        "CBR_REGION": "cn-north-4.evil",
        "AWS_LAMBDA_FUNCTION_NAME": "cbr-checkpointer",
        "MAX_CONCURRENCY": "0",
        "DRY_RUN": "perhaps",
        "HUAWEICLOUD_SDK_SK": "sk-very-secret\n",
        "HUAWEICLOUD_SDK_IAM_ENDPOINT": "http://iam.example.com",
        "AWS_ENDPOINT_URL_SQS": "https://user:very-secret@sqs.example.com",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://10.0.0.5",
    }

    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env(environment)

    message = str(raised.value)
    named = {variable for variable in environment if f"{variable}: " in message}
    assert named == set(environment) - {"AWS_LAMBDA_FUNCTION_NAME"}
    assert "IDEMPOTENCY_TABLE: is required in Lambda" in message
    assert message.count("HUAWEICLOUD_SDK_IAM_ENDPOINT: ") == 1  # one problem, however many regions use it
    assert "very-secret" not in message


def test_a_bad_override_name_does_not_make_the_allowed_regions_unreachable() -> None:
    environ = REGION | {"HUAWEICLOUD_SDK_REGION_CBR_NOT A REGION": "https://cbr.example.com"}

    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env(environ | {"ALLOWED_REGIONS": "eu-west-0"})

    assert "HUAWEICLOUD_SDK_REGION_CBR_NOT A REGION: does not name a region" in str(raised.value)
    assert "ALLOWED_REGIONS" not in str(raised.value)


class _RecordingEnvironment(dict[str, str]):
    """An environment that remembers every variable looked up by name."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


def test_environment_lists_every_variable_the_settings_read_and_only_those() -> None:
    environ = _RecordingEnvironment(dict(REGION))

    Settings.from_env(environ)

    regional = {f"HUAWEICLOUD_SDK_REGION_CBR_{region.upper().replace('-', '_')}" for region in CBR_REGIONS}
    other_sources = {"AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME"} | {
        f"AWS_ENDPOINT_URL_{service}" for service in AWS_SERVICE_ENV_IDS.values()
    }
    assert environ.read - regional - other_sources == set(ENVIRONMENT)
    assert set(ENVIRONMENT.values()) <= set(Settings.__match_args__)
