"""template.yaml, validated offline: SAM transform, cfn-lint on the expansion, assertions on the result.

cfn-lint alone does not expand SAM, so mistakes in SAM event properties (a typo in
FunctionResponseTypes, MaximumConcurrency below 2) pass it. Expanding with aws-sam-translator first
(no AWS call: the managed-policy loader is a stub) and linting the CloudFormation it produces catches
them; the negative tests below prove it.

Nothing here imports cbr_checkpointer: the handler path and the environment variables are checked
against the source files' text, so the test does not depend on the package importing cleanly.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable, Iterator
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.decode import cfn_yaml, decode
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SRC = ROOT / "src"
SETTINGS = SRC / "cbr_checkpointer" / "settings.py"
FUNCTION = "CheckpointerFunction"

# Variables the template sets that Powertools (not the app's settings) reads.
POWERTOOLS_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
# cfn-lint findings tolerated on the expanded template, with the reason. Errors are never tolerated.
ALLOWED_WARNINGS: dict[str, str] = {}

Template = dict[str, Any]


class NoManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader, which would list IAM policies over the network."""

    def load(self) -> dict[str, str]:
        return {}


def load_template() -> Template:
    template, matches = decode(str(TEMPLATE))
    assert not matches, [str(match) for match in matches]
    assert isinstance(template, dict), template
    return template


def expand(template: Template) -> Template:
    """The CloudFormation SAM would deploy, with the local CodeUri swapped for an S3 placeholder."""
    sam = copy.deepcopy(template)
    sam["Resources"][FUNCTION]["Properties"]["CodeUri"] = "s3://bucket/function.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        expanded = transform(sam, {}, NoManagedPolicies())
    assert isinstance(expanded, dict), expanded
    return expanded


def lint_findings(template: Template) -> list[tuple[str, str]]:
    """(rule id, message) of every cfn-lint finding on a CloudFormation template."""
    return [(match.rule.id, str(match)) for match in lint(json.dumps(template, default=str))]


def errors_in(findings: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(rule, message) for rule, message in findings if rule not in ALLOWED_WARNINGS]


@pytest.fixture(scope="module")
def sam_template() -> Template:
    return load_template()


@pytest.fixture(scope="module")
def expanded(sam_template: Template) -> Template:
    return expand(sam_template)


@pytest.fixture(scope="module")
def resources(expanded: Template) -> dict[str, Any]:
    return dict(expanded["Resources"])


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource.get("Properties", {})
        for name, resource in resources.items()
        if resource["Type"] == kind
    }


def referenced(value: Any) -> str:
    """The logical id behind `{"Fn::GetAtt": [resource, "Arn"]}` or `{"Ref": resource}`."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    raise AssertionError(f"expected a reference to a resource of the template, got {value!r}")


def dead_letter_queues(resources: dict[str, Any]) -> dict[str, str]:
    """Every queue that is a last stop for failed work -> what puts it there."""
    found: dict[str, str] = {}
    for name, queue in of_type(resources, "AWS::SQS::Queue").items():
        if "RedrivePolicy" in queue:
            found[referenced(queue["RedrivePolicy"]["deadLetterTargetArn"])] = f"{name} redrive"
    for name, schedule in of_type(resources, "AWS::Scheduler::Schedule").items():
        if "DeadLetterConfig" in schedule["Target"]:
            found[referenced(schedule["Target"]["DeadLetterConfig"]["Arn"])] = f"{name} delivery failures"
    for name, rule in of_type(resources, "AWS::Events::Rule").items():
        for target in rule["Targets"]:
            if "DeadLetterConfig" in target:
                found[referenced(target["DeadLetterConfig"]["Arn"])] = f"{name} delivery failures"
    for name, config in of_type(resources, "AWS::Lambda::EventInvokeConfig").items():
        on_failure = config.get("DestinationConfig", {}).get("OnFailure")
        if on_failure:
            found[referenced(on_failure["Destination"])] = f"{name} async failures"
    return found


def iter_statements(policy: dict[str, Any]) -> Iterator[dict[str, Any]]:
    statements = policy["PolicyDocument"]["Statement"]
    yield from statements if isinstance(statements, list) else [statements]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def contains_star(value: Any) -> bool:
    """True if a plain string anywhere in an action/resource (intrinsics included) holds a `*`."""
    if isinstance(value, str):
        return "*" in value
    if isinstance(value, dict):
        return any(contains_star(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_star(item) for item in value)
    return False


def function_props(resources: dict[str, Any]) -> dict[str, Any]:
    return dict(resources[FUNCTION]["Properties"])


def evaluate(template: Template, node: Any, parameters: dict[str, str]) -> Any:
    """The value of a condition or `Fn::If` for given parameter values (defaults for the rest)."""
    if not isinstance(node, dict) or len(node) != 1:
        return node
    ((function, argument),) = node.items()
    if function == "Ref" and argument in template["Parameters"]:
        return parameters.get(argument, template["Parameters"][argument].get("Default"))
    if function == "Condition":
        return evaluate(template, template["Conditions"][argument], parameters)
    if function == "Fn::Equals":
        return evaluate(template, argument[0], parameters) == evaluate(template, argument[1], parameters)
    if function == "Fn::Not":
        return not evaluate(template, argument[0], parameters)
    if function == "Fn::And":
        return all(evaluate(template, item, parameters) for item in argument)
    if function == "Fn::If":
        condition, when_true, when_false = argument
        held = evaluate(template, template["Conditions"][condition], parameters)
        return evaluate(template, when_true if held else when_false, parameters)
    return node


# ------------------------------------------------------------------ the pipeline


def test_sam_template_lints_clean(sam_template: Template) -> None:
    assert errors_in(lint_findings(sam_template)) == []


def test_expanded_template_lints_clean(expanded: Template) -> None:
    assert "Transform" not in expanded
    assert errors_in(lint_findings(expanded)) == []


def _typo_in_response_types(template: Template) -> None:
    events = template["Resources"][FUNCTION]["Properties"]["Events"]
    events["Requests"]["Properties"]["FunctionResponseTypes"] = ["ReportBatchItemFailure"]


def _concurrency_below_minimum(template: Template) -> None:
    events = template["Resources"][FUNCTION]["Properties"]["Events"]
    events["Requests"]["Properties"]["ScalingConfig"]["MaximumConcurrency"] = 1


def _visibility_below_timeout(template: Template) -> None:
    template["Resources"]["RequestQueue"]["Properties"]["VisibilityTimeout"] = 60


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        pytest.param(_typo_in_response_types, "E3030", id="FunctionResponseTypes typo"),
        pytest.param(_concurrency_below_minimum, "E3034", id="MaximumConcurrency 1"),
        pytest.param(_visibility_below_timeout, "E3505", id="visibility timeout below function timeout"),
    ],
)
def test_pipeline_catches_a_broken_event_source(
    sam_template: Template, mutate: Callable[[Template], None], rule: str
) -> None:
    broken = copy.deepcopy(sam_template)
    mutate(broken)
    assert rule in {found for found, _ in lint_findings(expand(broken))}


def test_transform_rejects_an_unknown_sam_property(sam_template: Template) -> None:
    broken = copy.deepcopy(sam_template)
    requests = broken["Resources"][FUNCTION]["Properties"]["Events"]["Requests"]["Properties"]
    requests["BatchSzie"] = requests.pop("BatchSize")
    with pytest.raises(InvalidDocumentException, match="BatchSzie"):
        expand(broken)


# ------------------------------------------------------------------ queues


def test_every_queue_is_encrypted(resources: dict[str, Any]) -> None:
    queues = of_type(resources, "AWS::SQS::Queue")
    assert queues
    for name, queue in queues.items():
        assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue, name


def test_work_queues_redrive_and_dead_letter_queues_keep_14_days(resources: dict[str, Any]) -> None:
    queues = of_type(resources, "AWS::SQS::Queue")
    dlqs = dead_letter_queues(resources)
    assert set(dlqs) <= set(queues)
    for name, queue in queues.items():
        assert name in dlqs or "RedrivePolicy" in queue, f"{name} receives work but has no RedrivePolicy"
    for name in dlqs:
        assert queues[name]["MessageRetentionPeriod"] == 1209600, name
        assert "RedrivePolicy" not in queues[name], name
    sources = [
        referenced(m["EventSourceArn"])
        for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    ]
    assert sources
    for name in sources:
        assert name not in dlqs
        assert queues[name]["RedrivePolicy"]["maxReceiveCount"] == 5


def test_visibility_timeout_covers_six_function_timeouts(resources: dict[str, Any]) -> None:
    timeout = function_props(resources)["Timeout"]
    queues = of_type(resources, "AWS::SQS::Queue")
    for mapping in of_type(resources, "AWS::Lambda::EventSourceMapping").values():
        queue = queues[referenced(mapping["EventSourceArn"])]
        window = mapping.get("MaximumBatchingWindowInSeconds", 0)
        assert queue["VisibilityTimeout"] >= 6 * timeout + window


def test_event_source_mapping_reports_partial_failures(resources: dict[str, Any]) -> None:
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    # The request queue, and the watch queue of completion checks.
    assert sorted(referenced(m["EventSourceArn"]) for m in mappings) == ["RequestQueue", "WatchQueue"]
    for mapping in mappings:
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["BatchSize"] == 10
        assert "MaximumBatchingWindowInSeconds" in mapping
        assert mapping["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "SqsMaximumConcurrency"}


def test_completion_checks_go_to_the_watch_queue_the_function_reads(resources: dict[str, Any]) -> None:
    variables = function_props(resources)["Environment"]["Variables"]
    assert variables["WATCH_QUEUE_URL"] == {"Ref": "WatchQueue"}
    assert variables["WATCH_MAX_AGE_SECONDS"] == {"Ref": "WatchMaxAgeSeconds"}
    watch = resources["WatchQueue"]["Properties"]
    assert referenced(watch["RedrivePolicy"]["deadLetterTargetArn"]) == "WatchDeadLetterQueue"


def test_large_selections_fan_out_to_the_request_queue_the_function_reads(resources: dict[str, Any]) -> None:
    variables = resources[FUNCTION]["Properties"]["Environment"]["Variables"]
    assert variables["REQUEST_QUEUE_URL"] == {"Ref": "RequestQueue"}
    assert variables["FANOUT_INLINE_MAX"] == {"Ref": "FanoutInlineMax"}
    (fan_out,) = [
        statement
        for policy in resources[f"{FUNCTION}Role"]["Properties"]["Policies"]
        for statement in iter_statements(policy)
        if statement.get("Sid") == "FanOutSelections"
    ]
    assert (fan_out["Action"], fan_out["Resource"]) == (
        "sqs:SendMessage",
        {"Fn::GetAtt": ["RequestQueue", "Arn"]},
    )
    (requests,) = [
        mapping
        for mapping in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if referenced(mapping["EventSourceArn"]) == "RequestQueue"
    ]
    assert requests["BatchSize"] == 10
    assert requests["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "SqsMaximumConcurrency"}}


def test_an_empty_selection_alarms(resources: dict[str, Any]) -> None:
    (alarm,) = [
        a
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["MetricName"] == "SelectionEmpty"
    ]
    assert (alarm["Namespace"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "CbrCheckpointer",
        0,
        "GreaterThanThreshold",
    )


def test_every_dead_letter_queue_has_a_depth_alarm(resources: dict[str, Any]) -> None:
    watched = {}
    for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values():
        if alarm["Namespace"] == "AWS/SQS" and alarm["MetricName"] == "ApproximateNumberOfMessagesVisible":
            (dimension,) = alarm["Dimensions"]
            watched[dimension["Value"]["Fn::GetAtt"][0]] = alarm
    for name, role in dead_letter_queues(resources).items():
        assert name in watched, f"no depth alarm on {name} ({role})"
        alarm = watched[name]
        assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Maximum", 60, 0)
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"


# ------------------------------------------------------------------ timer and async invokes


def test_schedule_has_a_dead_letter_queue_and_the_scheduler_placeholders(resources: dict[str, Any]) -> None:
    (schedule,) = of_type(resources, "AWS::Scheduler::Schedule").values()
    target = schedule["Target"]
    assert "DeadLetterConfig" in target, "delivery failures of the timer would be dropped"
    assert "Arn" in target["DeadLetterConfig"]
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"} <= set(target["RetryPolicy"])
    text = target["Input"]["Fn::Sub"]
    assert "<aws.scheduler.schedule-arn>" in text
    assert "<aws.scheduler.scheduled-time>" in text
    payload = json.loads(text.replace("${DefaultVaultId}", "3b5816b5-f29c-4172-9d9a-76c719a659ce"))
    assert payload == {
        "vault_id": "3b5816b5-f29c-4172-9d9a-76c719a659ce",
        "schedule_arn": "<aws.scheduler.schedule-arn>",
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    }


VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"


@pytest.mark.parametrize(
    ("parameters", "timer", "rule"),
    [
        pytest.param(
            {"DefaultVaultId": VAULT, "RuleScheduleExpression": "rate(1 day)"},
            "DISABLED",
            "DISABLED",
            id="first deploy: nothing fires before the secret is filled",
        ),
        pytest.param(
            {"DefaultVaultId": VAULT, "RuleScheduleExpression": "rate(1 day)", "TimerState": "ENABLED"},
            "ENABLED",
            "ENABLED",
            id="enabled",
        ),
        pytest.param({"DefaultVaultId": VAULT, "TimerState": "ENABLED"}, "ENABLED", None, id="no rule asked"),
        pytest.param(
            {"RuleScheduleExpression": "rate(1 day)", "TimerState": "ENABLED"},
            "DISABLED",
            None,
            id="no vault: no timer, no rule",
        ),
    ],
)
def test_timers_fire_only_once_enabled_and_given_a_vault(
    sam_template: Template,
    resources: dict[str, Any],
    parameters: dict[str, str],
    timer: str,
    rule: str | None,
) -> None:
    (schedule,) = of_type(resources, "AWS::Scheduler::Schedule").values()
    assert evaluate(sam_template, schedule["State"], parameters) == timer
    scheduled_rule = resources["ScheduledRule"]
    if rule is None:
        assert not evaluate(sam_template, {"Condition": scheduled_rule["Condition"]}, parameters)
        return
    assert evaluate(sam_template, {"Condition": scheduled_rule["Condition"]}, parameters)
    assert evaluate(sam_template, scheduled_rule["Properties"]["State"], parameters) == rule


def test_scheduled_rule_invokes_the_function_and_only_the_rule_may(resources: dict[str, Any]) -> None:
    rule = resources["ScheduledRule"]
    (target,) = rule["Properties"]["Targets"]
    assert referenced(target["Arn"]) == FUNCTION
    assert rule["Properties"]["ScheduleExpression"] == {"Ref": "RuleScheduleExpression"}
    permission = resources["ScheduledRulePermission"]
    assert permission["Condition"] == rule["Condition"]
    assert referenced(permission["Properties"]["FunctionName"]) == FUNCTION
    assert permission["Properties"]["Principal"] == "events.amazonaws.com"
    assert referenced(permission["Properties"]["SourceArn"]) == "ScheduledRule"
    (statement,) = resources["ScheduleDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert referenced(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == "ScheduledRule"
    assert referenced(statement["Resource"]) == referenced(target["DeadLetterConfig"]["Arn"])


@pytest.mark.parametrize(
    ("parameter", "variable"),
    [("CbrEndpoint", "CBR_ENDPOINT"), ("IamEndpoint", "HUAWEICLOUD_SDK_IAM_ENDPOINT")],
)
def test_endpoint_overrides_reach_the_function_only_when_given(
    sam_template: Template, resources: dict[str, Any], parameter: str, variable: str
) -> None:
    pattern = sam_template["Parameters"][parameter]["AllowedPattern"]
    for good in ("", "https://cbr.eu-west-101.myhuaweicloud.eu", "https://iam.example.com:8443/v3-proxy"):
        assert re.fullmatch(pattern, good), good
    for bad in ("http://cbr.example.com", "https://evil.example#", "https://user@host", "cbr.example.com"):
        assert not re.fullmatch(pattern, bad), bad
    value = function_props(resources)["Environment"]["Variables"][variable]
    assert evaluate(sam_template, value, {}) == {"Ref": "AWS::NoValue"}
    assert evaluate(sam_template, value, {parameter: "https://x.example"}) == "https://x.example"


def test_async_invokes_retry_twice_then_land_in_a_queue(resources: dict[str, Any]) -> None:
    (config,) = of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
    assert config["MaximumRetryAttempts"] == 2
    assert "MaximumEventAgeInSeconds" in config
    failure_queue = referenced(config["DestinationConfig"]["OnFailure"]["Destination"])
    assert resources[failure_queue]["Type"] == "AWS::SQS::Queue"


# ------------------------------------------------------------------ IAM


def test_our_policy_statements_name_no_wildcards(sam_template: Template, resources: dict[str, Any]) -> None:
    ours = sam_template["Resources"][FUNCTION]["Properties"]["Policies"]
    role = resources[f"{FUNCTION}Role"]["Properties"]
    inline = [
        policy for policy in role["Policies"] if policy["PolicyName"].startswith(f"{FUNCTION}RolePolicy")
    ]
    assert len(inline) == len(ours)
    actions: set[str] = set()
    for policy in role["Policies"]:  # ours and the ones SAM derives (the failure destination)
        for statement in iter_statements(policy):
            assert statement["Effect"] == "Allow"
            assert not contains_star(statement["Action"]), statement
            assert not contains_star(statement["Resource"]), statement
            actions.update(as_list(statement["Action"]))
    assert actions == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "events:PutEvents",
        "secretsmanager:GetSecretValue",
        "sqs:SendMessage",
    }


def test_statements_are_scoped_to_our_resources(resources: dict[str, Any]) -> None:
    role = resources[f"{FUNCTION}Role"]["Properties"]
    by_action = {}
    send_to = []
    for policy in role["Policies"]:
        for statement in iter_statements(policy):
            for action in as_list(statement["Action"]):
                by_action[action] = statement["Resource"]
                if action == "sqs:SendMessage":
                    send_to.append(referenced(statement["Resource"]))
    assert by_action["dynamodb:PutItem"] == {"Fn::GetAtt": ["LedgerTable", "Arn"]}
    # The failure destination (SAM derives it), the watch queue (completion checks) and the request
    # queue (the vaults of a large selection), nothing else
    assert sorted(send_to) == ["InvocationFailureQueue", "RequestQueue", "WatchQueue"]
    assert by_action["events:PutEvents"]["Fn::If"][0] == "CreateEventBus"
    assert by_action["secretsmanager:GetSecretValue"]["Fn::If"][0] == "CreateSecret"


def test_role_managed_policies_are_only_what_sam_adds(resources: dict[str, Any]) -> None:
    """SAM attaches these two itself (logs; polling the request queue). Anything more is a review finding."""
    role = resources[f"{FUNCTION}Role"]["Properties"]
    assert set(role["ManagedPolicyArns"]) <= {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
    }


# ------------------------------------------------------------------ function wiring


def test_handler_resolves_to_a_function_in_src(resources: dict[str, Any]) -> None:
    *package, module, attribute = function_props(resources)["Handler"].split(".")
    search_path = [str(SRC)]
    for name in package:  # PathFinder locates modules without importing (or executing) them
        spec = PathFinder.find_spec(name, search_path)
        assert spec is not None, f"package {name} not found under {search_path}"
        assert spec.submodule_search_locations is not None, f"{name} is not a package"
        search_path = list(spec.submodule_search_locations)
    spec = PathFinder.find_spec(module, search_path)
    assert spec is not None
    assert spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert attribute in functions


def test_runtime_and_packaging(resources: dict[str, Any], sam_template: Template) -> None:
    function = function_props(resources)
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Timeout"] == 120
    assert function["MemorySize"] == 1769
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    assert function["LoggingConfig"]["ApplicationLogLevel"] == {"Ref": "LogLevel"}
    assert sam_template["Resources"][FUNCTION]["Properties"]["CodeUri"] == "dist/function.zip"
    log_group = referenced(function["LoggingConfig"]["LogGroup"])
    assert resources[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}


def test_secrets_extension_layer_is_attached_only_when_given(
    sam_template: Template, resources: dict[str, Any]
) -> None:
    parameter = sam_template["Parameters"]["SecretsExtensionLayerArn"]
    assert parameter["Default"] == ""
    assert re.fullmatch(parameter["AllowedPattern"], "")
    arm64_layer = (
        "arn:aws:lambda:eu-west-1:015030872274:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:12"
    )
    assert re.fullmatch(parameter["AllowedPattern"], arm64_layer)
    assert sam_template["Conditions"]["HasSecretsExtension"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "SecretsExtensionLayerArn"}, ""]}]
    }
    assert function_props(resources)["Layers"] == {
        "Fn::If": ["HasSecretsExtension", [{"Ref": "SecretsExtensionLayerArn"}], {"Ref": "AWS::NoValue"}]
    }


def test_every_environment_variable_is_one_the_app_reads(resources: dict[str, Any]) -> None:
    source = SETTINGS.read_text(encoding="utf-8")
    block = re.search(r"^ENVIRONMENT\b[^=]*=\s*\{(.*?)^\}", source, re.MULTILINE | re.DOTALL)
    assert block is not None, "ENVIRONMENT dict not found in settings.py"
    app_reads = set(re.findall(r'^\s*"([A-Z][A-Z0-9_]*)"\s*:', block.group(1), re.MULTILINE))
    assert "CBR_REGION" in app_reads
    variables = set(function_props(resources)["Environment"]["Variables"])
    assert variables - POWERTOOLS_VARIABLES <= app_reads, variables - POWERTOOLS_VARIABLES - app_reads
    assert variables >= POWERTOOLS_VARIABLES
    assert {
        "CBR_REGION",
        "HUAWEICLOUD_SDK_PROJECT_ID",
        "CBR_CREDENTIALS_SECRET",
        "EVENT_BUS_NAME",
        "EVENT_SOURCE",
        "IDEMPOTENCY_TABLE",
        "DEFAULT_VAULT_ID",
        "MAX_CONCURRENCY",
    } <= variables


# ------------------------------------------------------------------ state, bus, observability


def test_ledger_table_matches_what_the_ledger_writes(resources: dict[str, Any]) -> None:
    (table,) = of_type(resources, "AWS::DynamoDB::Table").values()
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_ledger_outlives_every_queued_message(resources: dict[str, Any]) -> None:
    """A message redriven from a DLQ must still find its result in the ledger (no second checkpoint)."""
    ttl = int(function_props(resources)["Environment"]["Variables"]["IDEMPOTENCY_TTL_SECONDS"])
    retention = max(
        queue.get("MessageRetentionPeriod", 345600)
        for queue in of_type(resources, "AWS::SQS::Queue").values()
    )
    assert ttl > retention


def test_bus_and_secret_are_created_only_when_none_is_given(resources: dict[str, Any]) -> None:
    assert resources["EventBus"]["Condition"] == "CreateEventBus"
    assert resources["CredentialsSecret"]["Condition"] == "CreateSecret"


def test_publish_failures_alarm_on_the_emf_metric(resources: dict[str, Any]) -> None:
    alarms = [
        a for a in of_type(resources, "AWS::CloudWatch::Alarm").values() if a["MetricName"] == "PublishFailed"
    ]
    (alarm,) = alarms
    assert alarm["Namespace"] == "CbrCheckpointer"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "cbr-checkpointer"}]
    lambda_metrics = {
        a["MetricName"]
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["Namespace"] == "AWS/Lambda"
    }
    assert lambda_metrics == {"Errors", "Throttles"}


def test_dashboard_shows_outcomes_latency_and_dead_letters(resources: dict[str, Any]) -> None:
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body_text, _ = dashboard["DashboardBody"]["Fn::Sub"]
    body = json.loads(re.sub(r"\$\{[^}]+\}", "x", body_text))
    series = [metric[:2] for widget in body["widgets"] for metric in widget["properties"]["metrics"]]
    for name in ("CheckpointsCreated", "CheckpointsFailed", "RequestsRejected"):
        assert ["CbrCheckpointer", name] in series
    assert ["AWS/Lambda", "Duration"] in series
    assert ["AWS/SQS", "ApproximateNumberOfMessagesVisible"] in series


def test_outputs(expanded: Template) -> None:
    assert {"RequestQueueUrl", "EventBusName", "DashboardUrl", "FunctionArn", "LedgerTableName"} <= set(
        expanded["Outputs"]
    )


# ------------------------------------------------------------------ README's template snippets

README = ROOT / "README.md"
SNIPPET_MARKER = "<!-- template: added under CheckpointerFunction.Properties.Events -->"


def readme_event_snippets() -> list[dict[str, Any]]:
    """The function events README.md tells people to add to the template, as parsed YAML."""
    text = README.read_text(encoding="utf-8")
    snippets = re.findall(re.escape(SNIPPET_MARKER) + r"\n```yaml\n(.*?)```", text, re.DOTALL)
    return [cfn_yaml.loads(snippet) for snippet in snippets]


def test_readme_schedule_snippets_deploy_cleanly(sam_template: Template) -> None:
    snippets = readme_event_snippets()
    assert snippets, "README shows no schedule to add"
    with_snippets = copy.deepcopy(sam_template)
    events = with_snippets["Resources"][FUNCTION]["Properties"]["Events"]
    for snippet in snippets:
        assert not set(snippet) & set(events), "a README example reuses an event name of the template"
        events.update(snippet)
    expanded = expand(with_snippets)
    assert errors_in(lint_findings(expanded)) == []
    schedules = of_type(expanded["Resources"], "AWS::Scheduler::Schedule")
    assert len(schedules) == 1 + sum(len(snippet) for snippet in snippets)
    for schedule in schedules.values():
        text = schedule["Target"]["Input"]
        text = text["Fn::Sub"] if isinstance(text, dict) else text
        assert "<aws.scheduler.schedule-arn>" in text
        assert "<aws.scheduler.scheduled-time>" in text
        assert referenced(schedule["Target"]["DeadLetterConfig"]["Arn"]) == "ScheduleDeadLetterQueue"
