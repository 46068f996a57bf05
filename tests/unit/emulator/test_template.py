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
