"""The template reader and intrinsic resolver (pure)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from emulator.template import Resolver, TemplateError, parse_template

# The emulator's fixture template (tests/local runs a gateway from it).
FIXTURE = Path(__file__).resolve().parents[2] / "local" / "fixtures" / "template.json"
TEMPLATE: dict[str, Any] = json.loads(FIXTURE.read_text())


def test_routes_integrations_and_authorizer_are_found_by_type_and_reference() -> None:
    model = parse_template(TEMPLATE)
    api = model.api
    assert api.route_selection_expression == "$request.body.action"
    assert set(api.routes) == {"$connect", "$disconnect", "$default", "echo", "silent", "ping"}
    connect = api.routes["$connect"]
    assert connect.authorization_type == "CUSTOM"
    authorizer = api.authorizers[connect.authorizer_id or ""]
    assert authorizer.identity_sources == ("route.request.querystring.token",)
    assert model.functions[authorizer.function_id or ""].handler.endswith("authorizer.handler")
    ping = api.integrations[api.routes["ping"].integration_id or ""]
    assert ping.type == "MOCK" and ping.responses[0].templates["$default"] == '{"action":"pong"}'
    assert api.routes["echo"].has_route_response and not api.routes["silent"].has_route_response
    assert (api.stage.name, api.stage.burst_limit, api.stage.rate_limit) == ("dev", 500, 1000.0)


def test_event_source_mapping_queues_and_tables() -> None:
    model = parse_template(TEMPLATE)
    (mapping,) = model.mappings
    assert (mapping.batch_size, mapping.batching_window_s, mapping.maximum_concurrency) == (5, 0, 2)
    assert mapping.report_batch_item_failures
    queue = model.queues[mapping.queue_id]
    assert queue.attributes["VisibilityTimeout"] == "2"
    assert queue.max_receive_count == 2 and queue.dead_letter_id in model.queues
    (table,) = model.tables.values()
    assert (
        table.ttl_attribute == "ttl" and table.global_secondary_indexes[0]["IndexName"] == "byGsi1"
    )


def test_logical_ids_do_not_matter() -> None:
    # Given the same template with every logical id renamed
    text = __import__("json").dumps(TEMPLATE)
    for lid in TEMPLATE["Resources"]:
        text = text.replace(f'"{lid}"', f'"Renamed{lid[::-1]}"')
    renamed = __import__("json").loads(text)
    # Then the same API is read
    assert set(parse_template(renamed).api.routes) == set(parse_template(TEMPLATE).api.routes)


def test_route_to_a_missing_integration_is_an_error() -> None:
    broken = copy.deepcopy(TEMPLATE)
    del broken["Resources"]["EchoIntegrationE1"]
    with pytest.raises(TemplateError):
        parse_template(broken)


def test_resolver_handles_join_sub_getatt_select_split() -> None:
    resolver = Resolver(
        {"Q": "https://q", "AWS::Region": "eu-west-1"},
        lambda lid, attr: f"{lid}:{attr}",
    )
    assert resolver.resolve({"Fn::Join": ["/", [{"Ref": "Q"}, "x"]]}) == "https://q/x"
    assert resolver.resolve({"Fn::Sub": "${AWS::Region}-${Q.Arn}"}) == "eu-west-1-Q:Arn"
    assert resolver.resolve({"Fn::Sub": ["${a}!", {"a": {"Ref": "Q"}}]}) == "https://q!"
    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b"]}]}) == "b"
    with pytest.raises(TemplateError):
        resolver.resolve({"Ref": "Missing"})


def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


def test_given_identity_source_as_a_string_then_it_is_split_on_commas() -> None:
    edited = copy.deepcopy(TEMPLATE)
    props = resources(edited)["SocketAuthorizer0F0E0D0C"]["Properties"]
    props["IdentitySource"] = "route.request.querystring.token, route.request.header.X-Key"
    (authorizer,) = parse_template(edited).api.authorizers.values()
    assert authorizer.identity_sources == (
        "route.request.querystring.token",
        "route.request.header.X-Key",
    )


def test_given_a_lambda_alias_as_integration_uri_then_its_function_runs() -> None:
    edited = copy.deepcopy(TEMPLATE)
    resources(edited)["EchoAlias"] = {
        "Type": "AWS::Lambda::Alias",
        "Properties": {"FunctionName": {"Ref": "EchoFn7A7B7C7D"}, "Name": "live"},
    }
    resources(edited)["EchoIntegrationE1"]["Properties"]["IntegrationUri"] = {"Ref": "EchoAlias"}
    api = parse_template(edited).api
    assert api.integrations["EchoIntegrationE1"].function_id == "EchoFn7A7B7C7D"


def test_given_a_proxy_integration_without_a_function_then_it_is_an_error() -> None:
    edited = copy.deepcopy(TEMPLATE)
    resources(edited)["EchoIntegrationE1"]["Properties"]["IntegrationUri"] = "arn:elsewhere"
    with pytest.raises(TemplateError, match="names no Lambda function"):
        parse_template(edited)


def test_given_resources_of_another_api_then_they_are_ignored() -> None:
    edited = copy.deepcopy(TEMPLATE)
    resources(edited)["HttpApi"] = {
        "Type": "AWS::ApiGatewayV2::Api",
        "Properties": {"Name": "http", "ProtocolType": "HTTP"},
    }
    resources(edited)["HttpRoute"] = {
        "Type": "AWS::ApiGatewayV2::Route",
        "Properties": {"ApiId": {"Ref": "HttpApi"}, "RouteKey": "GET /"},
    }
    assert "GET /" not in parse_template(edited).api.routes


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.pop("SocketApi1A2B3C4D"), "exactly one WebSocket API"),
        (lambda r: r.update(Second=copy.deepcopy(r["SocketApi1A2B3C4D"])), "exactly one"),
        (lambda r: r.pop("SocketStageDev9F8E7D6C"), "no stage"),
        (lambda r: r.pop("PingIntegrationP1"), "refers to no integration"),
        (lambda r: r.pop("EchoFn7A7B7C7D"), "names no Lambda function"),
    ],
)
def test_given_a_template_missing_a_piece_then_the_error_names_it(edit: Any, message: str) -> None:
    edited = copy.deepcopy(TEMPLATE)
    edit(resources(edited))
    with pytest.raises(TemplateError, match=message):
        parse_template(edited)


def test_given_route_settings_then_the_stage_has_per_route_throttling() -> None:
    edited = copy.deepcopy(TEMPLATE)
    resources(edited)["SocketStageDev9F8E7D6C"]["Properties"]["RouteSettings"] = {
        "echo": {"ThrottlingBurstLimit": 2, "ThrottlingRateLimit": 1},
        "ping": {"ThrottlingBurstLimit": 3},
    }
    stage = parse_template(edited).api.stage
    assert stage.route_limits == {"echo": (2, 1.0), "ping": (3, None)}


def test_given_queue_settings_then_attributes_and_redrive_are_read() -> None:
    edited = copy.deepcopy(TEMPLATE)
    props = resources(edited)["WorkQueue11223344"]["Properties"]
    # A redrive policy may be a JSON string; booleans become "true"/"false".
    props["RedrivePolicy"] = '{"deadLetterTargetArn": "x", "maxReceiveCount": 7}'
    props["ContentBasedDeduplication"] = True
    props["FifoQueue"] = True
    queue = parse_template(edited).queues["WorkQueue11223344"]
    assert (queue.fifo, queue.max_receive_count, queue.dead_letter_id) == (True, 7, None)
    assert queue.attributes == {"VisibilityTimeout": "2", "ContentBasedDeduplication": "true"}


def test_given_functions_and_mappings_the_emulator_cannot_run_then_they_are_left_out() -> None:
    edited = copy.deepcopy(TEMPLATE)
    # A container-image function (no handler), and a stream mapping (not SQS).
    resources(edited)["ImageFn"] = {
        "Type": "AWS::Lambda::Function",
        "Properties": {"PackageType": "Image"},
    }
    resources(edited)["StreamMapping"] = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {"FunctionName": {"Ref": "ImageFn"}, "EventSourceArn": "arn:stream"},
    }
    model = parse_template(edited)
    assert "ImageFn" not in model.functions
    assert [m.logical_id for m in model.mappings] == ["WorkerMapping55667788"]


def test_given_an_sqs_mapping_to_a_function_without_handler_then_it_is_an_error() -> None:
    edited = copy.deepcopy(TEMPLATE)
    del resources(edited)["WorkerFn9A9B9C9D"]["Properties"]["Handler"]
    with pytest.raises(TemplateError, match="runs no local handler"):
        parse_template(edited)


def test_given_a_secret_and_a_table_then_their_settings_are_read() -> None:
    model = parse_template(TEMPLATE)
    (secret,) = model.secrets.values()
    assert (secret.generate_key, secret.literal) == ("signingKey", None)
    (table,) = model.tables.values()
    assert [k["AttributeName"] for k in table.key_schema] == ["pk", "sk"]


def test_resolver_handles_conditions_base64_and_escapes() -> None:
    resolver = Resolver(
        {"Q": "q"},
        lambda lid, attr: f"{lid}:{attr}",
        parameters={"Env": {"Default": "dev"}},
        conditions={"IsDev": {"Fn::Equals": [{"Ref": "Env"}, "dev"]}},
    )
    assert resolver.resolve({"Fn::If": ["IsDev", "a", "b"]}) == "a"
    assert resolver.resolve({"Fn::Not": [{"Condition": "IsDev"}]}) is False
    assert resolver.resolve({"Fn::And": [True, {"Fn::Or": [False, True]}]}) is True
    assert resolver.resolve({"Fn::Base64": {"Ref": "Q"}}) == "cQ=="
    assert resolver.resolve({"Fn::Sub": "${!Literal}-${Q}"}) == "${Literal}-q"
    assert resolver.resolve({"Tag": {"Ref": "Q"}, "n": 1}) == {"Tag": "q", "n": 1}
    with pytest.raises(TemplateError, match="not supported"):
        resolver.resolve({"Fn::FindInMap": ["m", "k", "v"]})
    with pytest.raises(TemplateError, match="unknown condition"):
        resolver.resolve({"Condition": "Nope"})
