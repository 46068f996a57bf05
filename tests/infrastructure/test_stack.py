"""What the synthesized stack must guarantee (issue: CDK app, acceptance list)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from tabrelay import wire

from functions.logic.gateway import ONE_WAY_ROUTES, ROUTES_WITH_RESPONSE
from infra.components.monitoring import AUTHORIZER_ERROR_RATE_PERCENT

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_ROUTES = {"snapshot", "command", "result", "subscribe", "unsubscribe", "ack", "list"}
MESSAGE_HANDLER = "functions.handlers.message.handler"


def of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Resources of CloudFormation type ``kind`` by logical id."""
    return {key: value for key, value in resources.items() if value["Type"] == kind}


def _function_by_handler(resources: dict[str, dict[str, Any]], handler: str) -> str:
    matches = [
        key
        for key, value in of_type(resources, "AWS::Lambda::Function").items()
        if value["Properties"]["Handler"] == handler
    ]
    assert len(matches) == 1, f"expected one function with handler {handler}, got {matches}"
    return matches[0]


def _integration_function(integration: dict[str, Any]) -> str:
    """The logical id of the Lambda function an AWS_PROXY integration invokes."""
    parts = integration["Properties"]["IntegrationUri"]["Fn::Join"][1]
    (function,) = [
        part["Fn::GetAtt"][0] for part in parts if isinstance(part, dict) and "Fn::GetAtt" in part
    ]
    return str(function)


def _routes(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        value["Properties"]["RouteKey"]: value
        for value in of_type(resources, "AWS::ApiGatewayV2::Route").values()
    }


def _target_integration(route: dict[str, Any]) -> str:
    target = route["Properties"]["Target"]
    return str(target["Fn::Join"][1][1]["Ref"])


def test_connect_authorizer_reads_the_token_from_the_query_string(
    template: dict[str, Any], resources: dict[str, dict[str, Any]]
) -> None:
    # Given the synthesized stack
    assertions = Template.from_json(template)
    # Then the only authorizer is a Lambda REQUEST authorizer on ?token=
    assertions.resource_count_is("AWS::ApiGatewayV2::Authorizer", 1)
    assertions.has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {"AuthorizerType": "REQUEST", "IdentitySource": ["route.request.querystring.token"]},
    )
    # And it runs the authorizer handler, guarding $connect
    (authorizer_id, authorizer) = next(
        iter(of_type(resources, "AWS::ApiGatewayV2::Authorizer").items())
    )
    uri_parts = authorizer["Properties"]["AuthorizerUri"]["Fn::Join"][1]
    invoked = [p["Fn::GetAtt"][0] for p in uri_parts if isinstance(p, dict) and "Fn::GetAtt" in p]
    assert invoked == [_function_by_handler(resources, "functions.handlers.authorizer.handler")]
    connect = _routes(resources)["$connect"]["Properties"]
    assert connect["AuthorizationType"] == "CUSTOM"
    assert connect["AuthorizerId"] == {"Ref": authorizer_id}


def test_every_protocol_route_is_wired_to_its_handler(
    template: dict[str, Any], resources: dict[str, dict[str, Any]]
) -> None:
    # Given the routes, integrations and route responses of the API
    routes = _routes(resources)
    integrations = of_type(resources, "AWS::ApiGatewayV2::Integration")
    responded = {
        value["Properties"]["RouteId"]["Ref"]
        for value in of_type(resources, "AWS::ApiGatewayV2::RouteResponse").values()
    }
    route_ids = {
        value["Properties"]["RouteKey"]: key
        for key, value in of_type(resources, "AWS::ApiGatewayV2::Route").items()
    }
    # Then the API selects routes by the body's action
    api = next(iter(of_type(resources, "AWS::ApiGatewayV2::Api").values()))["Properties"]
    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.action"
    # And exactly the protocol's routes exist
    assert set(routes) == {
        "$connect",
        "$disconnect",
        "$default",
        "ping",
        "keepalive",
        *PROTOCOL_ROUTES,
    }
    # And each route runs the handler docs/architecture.md names for it
    expected = {
        "$connect": "functions.handlers.connect.handler",
        "$disconnect": "functions.handlers.disconnect.handler",
        **{key: MESSAGE_HANDLER for key in ("$default", *PROTOCOL_ROUTES)},
    }
    for key, handler in expected.items():
        integration = integrations[_target_integration(routes[key])]
        assert integration["Properties"]["IntegrationType"] == "AWS_PROXY", key
        assert _integration_function(integration) == _function_by_handler(resources, handler), key
    # And exactly the routes that always reply return the handler's response body (a
    # route response is billed on every frame); the one-way ones have none
    with_response = {key for key, route_id in route_ids.items() if route_id in responded}
    assert with_response == {"$default", "subscribe", "unsubscribe", "list", "ping"}
    for key in with_response:
        assert routes[key]["Properties"]["RouteResponseSelectionExpression"] == "$default", key
    for key in ("snapshot", "command", "result", "ack", "keepalive"):
        assert "RouteResponseSelectionExpression" not in routes[key]["Properties"], key
    # And they are the routes the message handler answers in the response body
    assert with_response - {"ping"} == ROUTES_WITH_RESPONSE
    assert PROTOCOL_ROUTES - ROUTES_WITH_RESPONSE == ONE_WAY_ROUTES


def test_keepalive_is_a_mock_with_no_route_response_and_no_lambda(
    resources: dict[str, dict[str, Any]],
) -> None:
    # Given the keepalive route (the wire's one-way keep-alive action)
    keepalive = _routes(resources)[wire.KEEPALIVE_ACTION]
    integration_id = _target_integration(keepalive)
    integration = of_type(resources, "AWS::ApiGatewayV2::Integration")[integration_id]["Properties"]
    # Then a MOCK answers it: no Lambda is called
    assert integration["IntegrationType"] == "MOCK"
    # And nothing goes back: no route response, no integration response
    assert "RouteResponseSelectionExpression" not in keepalive["Properties"]
    route_id = next(
        key
        for key, value in of_type(resources, "AWS::ApiGatewayV2::Route").items()
        if value["Properties"]["RouteKey"] == wire.KEEPALIVE_ACTION
    )
    assert not [
        value
        for value in of_type(resources, "AWS::ApiGatewayV2::RouteResponse").values()
        if value["Properties"]["RouteId"] == {"Ref": route_id}
    ]
    assert not [
        value
        for value in of_type(resources, "AWS::ApiGatewayV2::IntegrationResponse").values()
        if value["Properties"]["IntegrationId"] == {"Ref": integration_id}
    ]


def test_ping_is_answered_by_a_mock_integration_without_a_lambda(
    resources: dict[str, dict[str, Any]],
) -> None:
    # Given the ping route
    ping = _routes(resources)["ping"]
    integration_id = _target_integration(ping)
    integration = of_type(resources, "AWS::ApiGatewayV2::Integration")[integration_id]["Properties"]
    # Then its integration is a MOCK answering {"action":"pong"} through a route response
    assert integration["IntegrationType"] == "MOCK"
    (response,) = [
        value["Properties"]
        for value in of_type(resources, "AWS::ApiGatewayV2::IntegrationResponse").values()
        if value["Properties"]["IntegrationId"] == {"Ref": integration_id}
    ]
    assert json.loads(response["ResponseTemplates"]["$default"]) == {"action": "pong"}
    assert ping["Properties"]["RouteResponseSelectionExpression"] == "$default"


def test_every_queue_has_a_dead_letter_queue_and_an_ssl_only_policy(
    resources: dict[str, dict[str, Any]],
) -> None:
    # Given the queues: the ones with a redrive policy are the work queues
    queues = of_type(resources, "AWS::SQS::Queue")
    work = {key: value for key, value in queues.items() if "RedrivePolicy" in value["Properties"]}
    dead_letter_ids = {
        value["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for value in work.values()
    }
    # Then there are three work queues (bus, command lane, delivery), each with its own DLQ
    assert len(work) == 3
    assert len(dead_letter_ids) == 3
    assert set(queues) == set(work) | dead_letter_ids
    for value in work.values():
        assert 1 <= value["Properties"]["RedrivePolicy"]["maxReceiveCount"] <= 10
    # And every queue is encrypted and denies any access without TLS
    policies = of_type(resources, "AWS::SQS::QueuePolicy").values()
    for key, value in queues.items():
        assert value["Properties"].get("SqsManagedSseEnabled") is True, key
        denies_insecure = [
            statement
            for policy in policies
            if {"Ref": key} in policy["Properties"]["Queues"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Deny"
            and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            and statement["Action"] == "sqs:*"
        ]
        assert denies_insecure, f"{key} has no SSL-only policy"


def test_every_event_source_reports_batch_item_failures_with_bounded_batches(
    resources: dict[str, dict[str, Any]],
) -> None:
    # Given the SQS event source mappings
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping")
    # Then the router consumes the bus, the commands function the command lane and
    # delivery the delivery queue, one queue each
    consumers = {
        value["Properties"]["FunctionName"]["Ref"]: value["Properties"]["EventSourceArn"][
            "Fn::GetAtt"
        ][0]
        for value in mappings.values()
    }
    assert set(consumers) == {
        _function_by_handler(resources, f"functions.handlers.{name}.handler")
        for name in ("router", "commands", "delivery")
    }
    assert len(set(consumers.values())) == 3
    # And each reports partial failures with a bounded batch, window and concurrency
    for key, value in mappings.items():
        properties = value["Properties"]
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"], key
        assert 1 <= properties["BatchSize"] <= 10, key
        assert 0 <= properties["MaximumBatchingWindowInSeconds"] <= 300, key
        assert 2 <= properties["ScalingConfig"]["MaximumConcurrency"] <= 1000, key


def test_queue_visibility_is_at_least_six_times_the_consumer_timeout(
    resources: dict[str, dict[str, Any]],
) -> None:
    # Given each mapping's queue and function
    queues = of_type(resources, "AWS::SQS::Queue")
    functions = of_type(resources, "AWS::Lambda::Function")
    for value in of_type(resources, "AWS::Lambda::EventSourceMapping").values():
        queue = queues[value["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
        function = functions[value["Properties"]["FunctionName"]["Ref"]]["Properties"]
        # Then the queue hides a message for 6x the function's timeout
        assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]


def test_manage_connections_is_scoped_to_this_api_and_stage(
    resources: dict[str, dict[str, Any]],
) -> None:
    # Given every IAM statement granting execute-api:ManageConnections
    (api_id,) = of_type(resources, "AWS::ApiGatewayV2::Api")
    (stage,) = of_type(resources, "AWS::ApiGatewayV2::Stage").values()
    stage_name = stage["Properties"]["StageName"]
    statements = [
        statement
        for policy in of_type(resources, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "execute-api:ManageConnections" in json.dumps(statement["Action"])
    ]
    assert statements
    pattern = re.compile(
        rf"^arn:\{{AWS::Partition}}:execute-api:\{{AWS::Region}}:\{{AWS::AccountId}}:\{{{api_id}}}"
        rf"/{stage_name}/(POST|GET|DELETE)/@connections/\*$"
    )
    for statement in statements:
        # Then it names only ManageConnections, on this API's stage, per method
        assert statement["Action"] == "execute-api:ManageConnections"
        for resource in statement["Resource"]:
            assert pattern.match(_flatten(resource)), resource


def _flatten(value: Any) -> str:
    """An intrinsic as text: Refs become ``{Name}``, joins are joined."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return "{" + str(value["Ref"]) + "}"
    if "Fn::GetAtt" in value:
        return "{" + ".".join(value["Fn::GetAtt"]) + "}"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_flatten(part) for part in parts)
    raise AssertionError(f"unexpected intrinsic {value}")


def _dummy(value: Any) -> str:
    """Any intrinsic resolved to a plausible dummy string (for an import-time check)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_dummy(part) for part in parts)
    return "dummy"


def _lambda_functions() -> list[str]:
    """Handler paths in docs/architecture.md's table of Lambda functions."""
    text = (PROJECT_ROOT / "docs" / "architecture.md").read_text()
    return sorted(
        set(re.findall(r"^\| \w+ \| `(functions\.handlers\.\w+\.handler)` \|", text, re.M))
    )


def test_the_stack_has_exactly_the_functions_of_the_architecture(
    resources: dict[str, dict[str, Any]],
) -> None:
    # Given the contract's table of functions
    documented = _lambda_functions()
    assert len(documented) == 7
    # Then the stack has one function per documented handler, and no other
    handlers = sorted(
        value["Properties"]["Handler"]
        for value in of_type(resources, "AWS::Lambda::Function").values()
    )
    assert handlers == documented


@pytest.mark.parametrize("handler", _lambda_functions())
def test_every_lambda_environment_provides_every_setting_its_handler_reads(
    resources: dict[str, dict[str, Any]], handler: str
) -> None:
    # Given the function's environment exactly as the stack sets it
    function = of_type(resources, "AWS::Lambda::Function")[_function_by_handler(resources, handler)]
    variables = function["Properties"]["Environment"]["Variables"]
    environment = {name: _dummy(value) for name, value in variables.items()}
    environment |= {
        "PATH": os.environ["PATH"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        # Settings with defaults must be provided too (functions/models/settings.py).
        "TABRELAY_STRICT_SETTINGS": "1",
    }
    module, attribute = handler.rsplit(".", 1)
    # When the handler module is imported with nothing else
    completed = subprocess.run(
        [sys.executable, "-c", f"import {module}; {module}.{attribute}"],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it imports (every setting it reads at import is there)
    assert completed.returncode == 0, completed.stderr


def test_every_function_runs_the_latest_python_on_arm64_with_tracing(
    template: dict[str, Any],
) -> None:
    Template.from_json(template).all_resources_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.14",
            "Architectures": ["arm64"],
            "TracingConfig": {"Mode": "Active"},
            "LoggingConfig": {"LogGroup": Match.any_value()},
        },
    )


def test_the_table_is_keyed_pk_sk_with_ttl_and_point_in_time_recovery(
    template: dict[str, Any],
) -> None:
    Template.from_json(template).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "GlobalSecondaryIndexes": Match.absent(),
        },
    )


def test_idempotency_records_are_keyed_by_their_own_id(template: dict[str, Any]) -> None:
    # The idempotency key shape (issue 11, no single hot partition): Powertools writes
    # each record under its own id as the partition key, in the table's key and TTL
    # attributes, so commands spread over partitions instead of sharing one.
    from functions.dal.idempotency import KEY_PREFIX, RECORD_SORT_KEY, PowertoolsOnce

    (table,) = of_type(template["Resources"], "AWS::DynamoDB::Table").values()
    schema = {k["KeyType"]: k["AttributeName"] for k in table["Properties"]["KeySchema"]}
    ttl = table["Properties"]["TimeToLiveSpecification"]["AttributeName"]

    layer = PowertoolsOnce(object(), "table").persistence_layer()
    record_id = f"{KEY_PREFIX}#0123456789abcdef0123456789abcdef"
    assert layer._get_key(record_id) == {
        schema["HASH"]: {"S": record_id},
        schema["RANGE"]: {"S": RECORD_SORT_KEY},
    }
    assert (layer.key_attr, layer.sort_key_attr, layer.expiry_attr) == (
        schema["HASH"],
        schema["RANGE"],
        ttl,
    )


def test_gateway_functions_cache_recipients_for_the_default_seconds(
    resources: dict[str, dict[str, Any]],
) -> None:
    # The delay a subscription change can see (docs/protocol.md, "Subscriptions").
    from functions.models.settings import DEFAULT_RECIPIENT_CACHE_SECONDS

    cached = {
        value["Properties"]["Handler"]: value["Properties"]["Environment"]["Variables"].get(
            "RECIPIENT_CACHE_SECONDS"
        )
        for value in of_type(resources, "AWS::Lambda::Function").values()
        if "authorizer" not in value["Properties"]["Handler"]
    }
    assert set(cached.values()) == {str(DEFAULT_RECIPIENT_CACHE_SECONDS)}, cached


def test_the_stage_is_throttled_and_access_logged(template: dict[str, Any]) -> None:
    Template.from_json(template).has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": "dev",
            "AutoDeploy": True,
            # Routes are left to the account's request quota at its defaults (10,000
            # requests/s, burst 5,000); the per-connection limiter guards floods.
            "DefaultRouteSettings": {
                "ThrottlingRateLimit": 10_000,
                "ThrottlingBurstLimit": 5_000,
            },
            "AccessLogSettings": {"DestinationArn": Match.any_value(), "Format": Match.any_value()},
        },
    )


def test_dead_letter_queues_raise_an_alarm_at_the_first_message(
    resources: dict[str, dict[str, Any]],
) -> None:
    # Given the dead-letter queues
    queues = of_type(resources, "AWS::SQS::Queue")
    dead_letter_ids = {
        value["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for value in queues.values()
        if "RedrivePolicy" in value["Properties"]
    }
    # Then each has an alarm on visible messages > 0 that notifies someone
    for queue_id in dead_letter_ids:
        alarms = [
            value["Properties"]
            for value in of_type(resources, "AWS::CloudWatch::Alarm").values()
            if value["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and value["Properties"]["Dimensions"][0]["Value"]
            == {"Fn::GetAtt": [queue_id, "QueueName"]}
        ]
        assert len(alarms) == 1, queue_id
        assert alarms[0]["Threshold"] == 0
        assert alarms[0]["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarms[0]["AlarmActions"]


def test_an_unacknowledged_cdk_nag_finding_fails_synthesis(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Given the app with one resource cdk-nag flags (an unencrypted queue without DLQ)
    from aws_cdk import aws_sqs as sqs

    from infra.synth import build_app

    app, stack = build_app(outdir=tmp_path_factory.mktemp("nag"), context={"bundle": "false"})
    sqs.CfnQueue(stack, "Unchecked")
    # When it is synthesized, Then synthesis fails with the validation report
    with pytest.raises(RuntimeError, match=r"AwsSolutions-SQS3"):
        app.synth()


def test_context_values_reach_the_template(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Given context overrides as the CLI passes them (strings)
    from infra.synth import synthesize

    context = {
        "bundle": "false",
        "stage": "local",
        "maxUnacked": "7",
        "deliveryBatchSize": "4",
        "deliveryMaxConcurrency": "3",
        "throttleRateLimit": "11",
    }
    # When the app is synthesized with them
    template = synthesize(tmp_path_factory.mktemp("context"), context)
    resources = template["Resources"]
    # Then the stage, the handlers' settings, the event source and throttling follow
    delivery = _function_by_handler(resources, "functions.handlers.delivery.handler")
    assert resources[delivery]["Properties"]["Environment"]["Variables"]["MAX_UNACKED"] == "7"
    (mapping,) = [
        value["Properties"]
        for value in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if value["Properties"]["FunctionName"] == {"Ref": delivery}
    ]
    assert mapping["BatchSize"] == 4
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == 3
    (stage,) = of_type(resources, "AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["StageName"] == "local"
    assert stage["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"] == 11


# -- options: reserved concurrency and a custom domain (issue 16) ------------------------

DOMAIN_TYPES = (
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::Route53::RecordSet",
)


def _reservations(resources: dict[str, dict[str, Any]]) -> dict[str, int | None]:
    """Reserved concurrency by handler module name (None: no reservation)."""
    return {
        value["Properties"]["Handler"].split(".")[2]: value["Properties"].get(
            "ReservedConcurrentExecutions"
        )
        for value in of_type(resources, "AWS::Lambda::Function").values()
    }


def test_without_options_no_function_reserves_concurrency_and_there_is_no_custom_domain(
    template: dict[str, Any], resources: dict[str, dict[str, Any]]
) -> None:
    # Given the default stack, Then every function shares the account's pool
    assert set(_reservations(resources).values()) == {None}
    # And nothing of a custom domain exists
    for kind in DOMAIN_TYPES:
        assert not of_type(resources, kind), kind
    assert "CustomDomainUrl" not in template["Outputs"]


def test_reserved_concurrency_option_reserves_the_connection_path_and_bounds_mappings(
    options_template: dict[str, Any],
) -> None:
    # Given the stack with reservedConcurrency=true and reservations for every worker
    resources = options_template["Resources"]
    reserved = _reservations(resources)
    # Then the authorizer, connect and disconnect functions get the default reservation
    assert reserved["authorizer"] == reserved["connect"] == reserved["disconnect"] == 50
    # And the message function still shares the pool
    assert reserved["message"] is None
    # And each worker's event source runs at most as many batches as its reservation
    for worker, expected in (("router", 20), ("commands", 20), ("delivery", 60)):
        function = _function_by_handler(resources, f"functions.handlers.{worker}.handler")
        (mapping,) = [
            value["Properties"]
            for value in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
            if value["Properties"]["FunctionName"] == {"Ref": function}
        ]
        assert reserved[worker] == expected
        assert mapping["ScalingConfig"]["MaximumConcurrency"] <= expected, worker


def test_a_mapping_above_its_functions_reservation_fails_synthesis() -> None:
    # Given a delivery reservation below the delivery mapping's maximum concurrency
    from infra.config import InvalidSettingError
    from infra.synth import build_app

    context = {"bundle": "false", "deliveryReservedConcurrency": "10"}
    # When the app is built, Then it fails naming both settings
    with pytest.raises(InvalidSettingError, match=r"deliveryMaxConcurrency=50 exceeds"):
        build_app(context=context)


def test_custom_domain_option_maps_the_stage_and_writes_the_alias_record(
    options_template: dict[str, Any],
) -> None:
    # Given the stack with a domain name, certificate and hosted zone
    resources = options_template["Resources"]
    (domain_id, domain) = next(iter(of_type(resources, "AWS::ApiGatewayV2::DomainName").items()))
    # Then the domain is regional, TLS 1.2, with the given certificate
    assert domain["Properties"]["DomainName"] == "ws.example.com"
    (config,) = domain["Properties"]["DomainNameConfigurations"]
    assert config["EndpointType"] == "REGIONAL"
    assert config["SecurityPolicy"] == "TLS_1_2"
    assert config["CertificateArn"].startswith("arn:aws:acm:eu-west-1:123456789012:")
    # And the API's stage is mapped at the domain's root, after the stage exists
    (api_id,) = of_type(resources, "AWS::ApiGatewayV2::Api")
    (stage_id,) = of_type(resources, "AWS::ApiGatewayV2::Stage")
    (mapping,) = of_type(resources, "AWS::ApiGatewayV2::ApiMapping").values()
    assert mapping["Properties"]["ApiId"] == {"Ref": api_id}
    assert mapping["Properties"]["DomainName"] == {"Ref": domain_id}
    assert mapping["Properties"]["Stage"] == "dev"
    assert "ApiMappingKey" not in mapping["Properties"]
    assert stage_id in mapping["DependsOn"]
    # And the zone gets an alias A record to the regional domain
    (record,) = of_type(resources, "AWS::Route53::RecordSet").values()
    assert record["Properties"]["HostedZoneId"] == "Z0123456789ABCDEFGHIJ"
    assert record["Properties"]["Name"] == "ws.example.com."
    assert record["Properties"]["Type"] == "A"
    assert record["Properties"]["AliasTarget"]["DNSName"] == {
        "Fn::GetAtt": [domain_id, "RegionalDomainName"]
    }
    # And the stack prints the URL that survives replacing the API
    assert options_template["Outputs"]["CustomDomainUrl"]["Value"] == "wss://ws.example.com"


def test_the_template_with_every_option_on_is_cfn_lint_clean(options_template_path: Path) -> None:
    # Given the template with every option on (synthesis already passed cdk-nag)
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    # When cfn-lint checks it as `make synth` does, Then it reports nothing
    result = subprocess.run(
        [str(cfn_lint), "--ignore-checks", "W3005", "--", str(options_template_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _metric_alarms(resources: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The alarms defined by metric math (``Metrics``), as CloudFormation has them."""
    return [
        value["Properties"]
        for value in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if "Metrics" in value["Properties"]
    ]


def test_the_authorizer_alarms_on_an_error_rate_and_refused_tokens_are_not_errors(
    resources: dict[str, dict[str, Any]],
) -> None:
    # Given the authorizer function
    authorizer = _function_by_handler(resources, "functions.handlers.authorizer.handler")
    alarms = of_type(resources, "AWS::CloudWatch::Alarm").values()

    def watches_authorizer_errors(properties: dict[str, Any]) -> bool:
        metrics = [properties] + [
            m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m
        ]
        return any(
            m.get("MetricName") == "Errors"
            and {"Name": "FunctionName", "Value": {"Ref": authorizer}} in m.get("Dimensions", [])
            for m in metrics
        )

    (alarm,) = [a["Properties"] for a in alarms if watches_authorizer_errors(a["Properties"])]
    # Then no alarm pages on its first error: it is a rate of errors to invocations
    expression = next(m["Expression"] for m in alarm["Metrics"] if "Expression" in m)
    assert "errors / invocations" in expression
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert names == {"Errors", "Invocations"}
    assert alarm["Threshold"] == AUTHORIZER_ERROR_RATE_PERCENT > 0
    assert alarm["EvaluationPeriods"] == 2
    assert alarm["AlarmActions"]
    # And every other function keeps its alarm at the first error
    for handler in ("connect", "disconnect", "message", "router", "commands", "delivery"):
        function = _function_by_handler(resources, f"functions.handlers.{handler}.handler")
        errors = [
            a["Properties"]
            for a in alarms
            if a["Properties"].get("MetricName") == "Errors"
            and a["Properties"]["Dimensions"]
            == [{"Name": "FunctionName", "Value": {"Ref": function}}]
        ]
        assert [a["Threshold"] for a in errors] == [0], handler


def test_dynamodb_throttles_raise_an_alarm(resources: dict[str, dict[str, Any]]) -> None:
    # Given the connections table
    (table,) = of_type(resources, "AWS::DynamoDB::Table")
    # Then one alarm sums its read and write throttle events and pages at the first
    throttles = [
        alarm
        for alarm in _metric_alarms(resources)
        if {
            (
                m["MetricStat"]["Metric"]["MetricName"],
                json.dumps(m["MetricStat"]["Metric"]["Dimensions"], sort_keys=True),
            )
            for m in alarm["Metrics"]
            if "MetricStat" in m
        }
        == {
            (name, json.dumps([{"Name": "TableName", "Value": {"Ref": table}}], sort_keys=True))
            for name in ("ReadThrottleEvents", "WriteThrottleEvents")
        }
    ]
    assert len(throttles) == 1
    assert throttles[0]["Threshold"] == 0
    assert throttles[0]["ComparisonOperator"] == "GreaterThanThreshold"
    assert throttles[0]["AlarmActions"]
    # And every function has a throttle alarm as well
    functions = of_type(resources, "AWS::Lambda::Function")
    throttled = {
        a["Properties"]["Dimensions"][0]["Value"]["Ref"]
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "Throttles"
    }
    handlers = {
        k
        for k, v in functions.items()
        if str(v["Properties"].get("Handler", "")).startswith("functions.")
    }
    assert handlers <= throttled


# -- the command lane (issue 11: commands never wait behind fan-out or presence) ----------


def _mapping_of(resources: dict[str, dict[str, Any]], function: str) -> dict[str, Any]:
    (mapping,) = [
        value["Properties"]
        for value in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if value["Properties"]["FunctionName"] == {"Ref": function}
    ]
    return mapping


def _alarms_on(resources: dict[str, dict[str, Any]], metric: str, dimension: Any) -> list[Any]:
    return [
        value["Properties"]
        for value in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if value["Properties"].get("MetricName") == metric
        and [d["Value"] for d in value["Properties"].get("Dimensions", [])] == [dimension]
    ]


def test_commands_and_results_have_their_own_queue_function_and_concurrency(
    resources: dict[str, dict[str, Any]],
) -> None:
    from infra.config import StackSettings

    defaults = StackSettings()
    # Given the commands function, the router and what feeds each
    commands = _function_by_handler(resources, "functions.handlers.commands.handler")
    router = _function_by_handler(resources, "functions.handlers.router.handler")
    lane, bus = _mapping_of(resources, commands), _mapping_of(resources, router)
    lane_queue = lane["EventSourceArn"]["Fn::GetAtt"][0]
    bus_queue = bus["EventSourceArn"]["Fn::GetAtt"][0]
    # Then the command lane is a queue of its own, not the bus
    assert lane_queue != bus_queue
    queues = of_type(resources, "AWS::SQS::Queue")
    redrive = queues[lane_queue]["Properties"]["RedrivePolicy"]
    lane_dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
    bus_dlq = queues[bus_queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
    assert lane_dlq != bus_dlq["Fn::GetAtt"][0]
    assert redrive["maxReceiveCount"] == defaults.max_receive_count
    # And its event source has its own batch and maximum concurrency
    assert lane["BatchSize"] == defaults.commands_batch_size
    assert lane["ScalingConfig"]["MaximumConcurrency"] == defaults.commands_max_concurrency
    assert bus["ScalingConfig"]["MaximumConcurrency"] == defaults.router_max_concurrency
    assert lane["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # And every gateway function sends to the lane it names in its environment
    functions = of_type(resources, "AWS::Lambda::Function")
    message = _function_by_handler(resources, MESSAGE_HANDLER)
    variables = functions[message]["Properties"]["Environment"]["Variables"]
    assert variables["COMMAND_QUEUE_URL"] == {"Ref": lane_queue}
    assert variables["BUS_QUEUE_URL"] == {"Ref": bus_queue}
    # And the lane's DLQ, its backlog and its function raise alarms like the bus's
    (dead_letters,) = _alarms_on(
        resources, "ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": [lane_dlq, "QueueName"]}
    )
    assert dead_letters["Threshold"] == 0 and dead_letters["AlarmActions"]
    (oldest,) = _alarms_on(
        resources, "ApproximateAgeOfOldestMessage", {"Fn::GetAtt": [lane_queue, "QueueName"]}
    )
    assert oldest["AlarmActions"]
    for metric in ("Errors", "Throttles"):
        (alarm,) = _alarms_on(resources, metric, {"Ref": commands})
        assert alarm["Threshold"] == 0 and alarm["AlarmActions"], metric


def test_the_command_lane_reservation_bounds_its_mapping() -> None:
    # Given a commands reservation below the lane's maximum concurrency
    from infra.config import InvalidSettingError
    from infra.synth import build_app

    context = {"bundle": "false", "commandsReservedConcurrency": "5"}
    # When the app is built, Then it fails naming both settings
    with pytest.raises(InvalidSettingError, match=r"commandsMaxConcurrency=20 exceeds"):
        build_app(context=context)
