"""Read what the emulator needs from a synthesized CloudFormation template.

Pure code: no AWS, no I/O. Everything is found by resource type and by the
references between resources (``Ref`` / ``Fn::GetAtt`` / ``Fn::Join`` / ...),
never by logical-id names, so renaming a construct in ``infra/`` changes
nothing here. What the template says is what the emulator does: routes, the
route selection expression, authorizers and their identity sources,
integrations (Lambda proxy or mock), route and integration responses, the
stage's throttling, each function's handler and environment, the SQS event
source mappings, queues (with redrive), tables (keys, indexes, TTL) and
secrets.

Values that only exist once resources exist (queue URLs, table names, ARNs)
are resolved later by :class:`Resolver`, given the physical values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Api",
    "Authorizer",
    "EventSourceMapping",
    "Function",
    "Integration",
    "IntegrationResponse",
    "Model",
    "Queue",
    "Resolver",
    "Route",
    "Secret",
    "Stage",
    "Table",
    "TemplateError",
    "parse_template",
    "referenced_ids",
]


class TemplateError(ValueError):
    """The template lacks something the emulator needs, or says it ambiguously."""


@dataclass(frozen=True, slots=True)
class IntegrationResponse:
    """An ``AWS::ApiGatewayV2::IntegrationResponse`` (used by mock integrations)."""

    key: str
    templates: Mapping[str, str]
    template_selection_expression: str | None


@dataclass(frozen=True, slots=True)
class Integration:
    """An ``AWS::ApiGatewayV2::Integration``: a Lambda proxy or a mock."""

    logical_id: str
    type: str
    function_id: str | None
    request_templates: Mapping[str, str]
    template_selection_expression: str | None
    responses: tuple[IntegrationResponse, ...] = ()


@dataclass(frozen=True, slots=True)
class Authorizer:
    """A REQUEST authorizer backed by a Lambda function."""

    logical_id: str
    type: str
    function_id: str | None
    identity_sources: tuple[str, ...]
    name: str


@dataclass(frozen=True, slots=True)
class Route:
    """An ``AWS::ApiGatewayV2::Route`` with what answers it."""

    logical_id: str
    key: str
    integration_id: str | None
    authorization_type: str
    authorizer_id: str | None
    response_selection_expression: str | None
    has_route_response: bool


@dataclass(frozen=True, slots=True)
class Stage:
    """The stage clients connect to, with its default and per-route throttling."""

    name: str
    burst_limit: int | None = None
    rate_limit: float | None = None
    route_limits: Mapping[str, tuple[int | None, float | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Api:
    """An API Gateway WebSocket API and everything that hangs off it."""

    logical_id: str
    name: str
    route_selection_expression: str
    routes: Mapping[str, Route]
    integrations: Mapping[str, Integration]
    authorizers: Mapping[str, Authorizer]
    stage: Stage


@dataclass(frozen=True, slots=True)
class Function:
    """An ``AWS::Lambda::Function`` run in-process from its dotted handler path."""

    logical_id: str
    handler: str
    environment: Mapping[str, Any]
    memory_mb: int
    timeout_s: float
    reserved_concurrency: int | None
    name: Any


@dataclass(frozen=True, slots=True)
class EventSourceMapping:
    """An SQS-to-Lambda event source mapping and its batching settings."""

    logical_id: str
    function_id: str
    queue_id: str
    batch_size: int
    batching_window_s: float
    maximum_concurrency: int | None
    report_batch_item_failures: bool
    enabled: bool


@dataclass(frozen=True, slots=True)
class Queue:
    """An ``AWS::SQS::Queue``."""

    logical_id: str
    name: Any
    fifo: bool
    attributes: Mapping[str, str]
    dead_letter_id: str | None
    max_receive_count: int | None


@dataclass(frozen=True, slots=True)
class Table:
    """A DynamoDB table (``AWS::DynamoDB::Table`` or ``::GlobalTable``)."""

    logical_id: str
    name: Any
    key_schema: tuple[Mapping[str, str], ...]
    attribute_definitions: tuple[Mapping[str, str], ...]
    global_secondary_indexes: tuple[Mapping[str, Any], ...]
    local_secondary_indexes: tuple[Mapping[str, Any], ...]
    ttl_attribute: str | None


@dataclass(frozen=True, slots=True)
class Secret:
    """An ``AWS::SecretsManager::Secret``; its value is set locally."""

    logical_id: str
    name: Any
    string_template: str | None
    generate_key: str | None
    literal: str | None


@dataclass(frozen=True, slots=True)
class Model:
    """Everything the emulator reads from one template."""

    api: Api
    functions: Mapping[str, Function]
    mappings: tuple[EventSourceMapping, ...]
    queues: Mapping[str, Queue]
    tables: Mapping[str, Table]
    secrets: Mapping[str, Secret]
    resource_types: Mapping[str, str]


def referenced_ids(value: Any) -> Iterator[str]:
    """Every logical id that ``value`` refers to via ``Ref``, ``Fn::GetAtt`` or ``Fn::Sub``."""
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            yield value["Ref"]
            return
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            if isinstance(target, str):
                yield target.split(".", 1)[0]
            elif isinstance(target, list) and target and isinstance(target[0], str):
                yield target[0]
            return
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            text = sub if isinstance(sub, str) else sub[0]
            for name in re.findall(r"\$\{([^}!]+)\}", text):
                yield name.split(".", 1)[0]
            if isinstance(sub, list) and len(sub) > 1:
                yield from referenced_ids(sub[1])
            return
        for item in value.values():
            yield from referenced_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from referenced_ids(item)


def _one_ref(value: Any, types: Mapping[str, str], wanted: tuple[str, ...]) -> str | None:
    """The single resource of one of the ``wanted`` types that ``value`` refers to."""
    found = [ref for ref in referenced_ids(value) if types.get(ref) in wanted]
    unique = list(dict.fromkeys(found))
    if len(unique) > 1:
        raise TemplateError(f"ambiguous reference to {wanted}: {unique}")
    return unique[0] if unique else None


def _int(value: Any, default: int | None) -> int | None:
    if value is None:
        return default
    return int(value)


_LAMBDA_TYPES = ("AWS::Lambda::Function",)


def _function_of(value: Any, types: Mapping[str, str], resources: Mapping[str, Any]) -> str | None:
    """The Lambda function that ``value`` (a URI, a name, an alias) points at."""
    direct = _one_ref(value, types, _LAMBDA_TYPES)
    if direct is not None:
        return direct
    via = _one_ref(value, types, ("AWS::Lambda::Alias", "AWS::Lambda::Version"))
    if via is not None:
        return _one_ref(
            resources[via].get("Properties", {}).get("FunctionName"), types, _LAMBDA_TYPES
        )
    return None


def parse_template(template: Mapping[str, Any]) -> Model:
    """Read the WebSocket API, functions, event sources, queues, tables and secrets.

    Raises :class:`TemplateError` if there is no WebSocket API, no stage, or a
    route or integration points at something that does not exist.
    """
    resources: Mapping[str, Any] = template.get("Resources", {})
    types = {lid: res.get("Type", "") for lid, res in resources.items()}

    def of_type(*wanted: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for lid, res in resources.items():
            if res.get("Type") in wanted:
                yield lid, res.get("Properties", {}) or {}

    apis = [
        (lid, props)
        for lid, props in of_type("AWS::ApiGatewayV2::Api")
        if str(props.get("ProtocolType", "")).upper() == "WEBSOCKET"
    ]
    if len(apis) != 1:
        raise TemplateError(f"expected exactly one WebSocket API, found {len(apis)}")
    api_id, api_props = apis[0]

    def belongs(props: Mapping[str, Any]) -> bool:
        return _one_ref(props.get("ApiId"), types, ("AWS::ApiGatewayV2::Api",)) == api_id

    int_responses: dict[str, list[IntegrationResponse]] = {}
    for _lid, props in of_type("AWS::ApiGatewayV2::IntegrationResponse"):
        if not belongs(props):
            continue
        integ = _one_ref(props.get("IntegrationId"), types, ("AWS::ApiGatewayV2::Integration",))
        if integ is None:
            raise TemplateError("an IntegrationResponse refers to no integration")
        int_responses.setdefault(integ, []).append(
            IntegrationResponse(
                key=str(props.get("IntegrationResponseKey", "$default")),
                templates=dict(props.get("ResponseTemplates") or {}),
                template_selection_expression=props.get("TemplateSelectionExpression"),
            )
        )

    integrations: dict[str, Integration] = {}
    for lid, props in of_type("AWS::ApiGatewayV2::Integration"):
        if not belongs(props):
            continue
        kind = str(props.get("IntegrationType", "")).upper()
        function_id = None
        if kind in ("AWS_PROXY", "AWS"):
            function_id = _function_of(props.get("IntegrationUri"), types, resources)
            if function_id is None:
                raise TemplateError(f"integration {lid} names no Lambda function in this template")
        integrations[lid] = Integration(
            logical_id=lid,
            type=kind,
            function_id=function_id,
            request_templates=dict(props.get("RequestTemplates") or {}),
            template_selection_expression=props.get("TemplateSelectionExpression"),
            responses=tuple(int_responses.get(lid, ())),
        )

    authorizers: dict[str, Authorizer] = {}
    for lid, props in of_type("AWS::ApiGatewayV2::Authorizer"):
        if not belongs(props):
            continue
        sources = props.get("IdentitySource") or []
        if isinstance(sources, str):
            sources = [s.strip() for s in sources.split(",")]
        authorizers[lid] = Authorizer(
            logical_id=lid,
            type=str(props.get("AuthorizerType", "REQUEST")).upper(),
            function_id=_function_of(props.get("AuthorizerUri"), types, resources),
            identity_sources=tuple(str(s) for s in sources),
            name=str(props.get("Name", lid)),
        )

    routes_by_id: dict[str, Route] = {}
    for lid, props in of_type("AWS::ApiGatewayV2::Route"):
        if not belongs(props):
            continue
        target = props.get("Target")
        integ = _one_ref(target, types, ("AWS::ApiGatewayV2::Integration",))
        if target is not None and integ is None:
            raise TemplateError(f"route {lid} targets no integration of this template")
        routes_by_id[lid] = Route(
            logical_id=lid,
            key=str(props["RouteKey"]),
            integration_id=integ,
            authorization_type=str(props.get("AuthorizationType", "NONE")).upper(),
            authorizer_id=_one_ref(
                props.get("AuthorizerId"), types, ("AWS::ApiGatewayV2::Authorizer",)
            ),
            response_selection_expression=props.get("RouteResponseSelectionExpression"),
            has_route_response=False,
        )
    with_response: set[str] = set()
    for _lid, props in of_type("AWS::ApiGatewayV2::RouteResponse"):
        if belongs(props):
            route = _one_ref(props.get("RouteId"), types, ("AWS::ApiGatewayV2::Route",))
            if route is not None:
                with_response.add(route)
    routes = {
        r.key: Route(
            logical_id=r.logical_id,
            key=r.key,
            integration_id=r.integration_id,
            authorization_type=r.authorization_type,
            authorizer_id=r.authorizer_id,
            response_selection_expression=r.response_selection_expression,
            has_route_response=r.logical_id in with_response,
        )
        for r in routes_by_id.values()
    }

    stages = [props for _lid, props in of_type("AWS::ApiGatewayV2::Stage") if belongs(props)]
    if not stages:
        raise TemplateError("the WebSocket API has no stage")
    stage_props = stages[0]
    defaults = stage_props.get("DefaultRouteSettings") or {}
    route_limits: dict[str, tuple[int | None, float | None]] = {}
    for key, settings in (stage_props.get("RouteSettings") or {}).items():
        route_limits[str(key)] = (
            _int(settings.get("ThrottlingBurstLimit"), None),
            None
            if settings.get("ThrottlingRateLimit") is None
            else float(settings["ThrottlingRateLimit"]),
        )
    stage = Stage(
        name=str(stage_props.get("StageName", "$default")),
        burst_limit=_int(defaults.get("ThrottlingBurstLimit"), None),
        rate_limit=(
            None
            if defaults.get("ThrottlingRateLimit") is None
            else float(defaults["ThrottlingRateLimit"])
        ),
        route_limits=route_limits,
    )

    api = Api(
        logical_id=api_id,
        name=str(api_props.get("Name", api_id)),
        route_selection_expression=str(
            api_props.get("RouteSelectionExpression", "$request.body.action")
        ),
        routes=routes,
        integrations=integrations,
        authorizers=authorizers,
        stage=stage,
    )

    functions: dict[str, Function] = {}
    for lid, props in of_type("AWS::Lambda::Function"):
        handler = props.get("Handler")
        if not isinstance(handler, str):
            continue  # container-image or inline functions without a handler are not ours
        functions[lid] = Function(
            logical_id=lid,
            handler=handler,
            environment=dict((props.get("Environment") or {}).get("Variables") or {}),
            memory_mb=int(props.get("MemorySize", 128)),
            timeout_s=float(props.get("Timeout", 3)),
            reserved_concurrency=_int(props.get("ReservedConcurrentExecutions"), None),
            name=props.get("FunctionName"),
        )

    for checked_route in routes.values():
        if checked_route.integration_id not in (None, *integrations):
            raise TemplateError(f"route {checked_route.key} targets a missing integration")
    for checked in integrations.values():
        if checked.function_id is not None and checked.function_id not in functions:
            raise TemplateError(f"integration {checked.logical_id} runs no local handler")

    queues: dict[str, Queue] = {}
    for lid, props in of_type("AWS::SQS::Queue"):
        redrive = props.get("RedrivePolicy") or {}
        if isinstance(redrive, str):
            redrive = json.loads(redrive)
        attributes: dict[str, str] = {}
        for prop, attr in (
            ("VisibilityTimeout", "VisibilityTimeout"),
            ("MessageRetentionPeriod", "MessageRetentionPeriod"),
            ("DelaySeconds", "DelaySeconds"),
            ("MaximumMessageSize", "MaximumMessageSize"),
            ("ReceiveMessageWaitTimeSeconds", "ReceiveMessageWaitTimeSeconds"),
            ("ContentBasedDeduplication", "ContentBasedDeduplication"),
        ):
            if props.get(prop) is not None:
                value = props[prop]
                attributes[attr] = str(value).lower() if isinstance(value, bool) else str(value)
        queues[lid] = Queue(
            logical_id=lid,
            name=props.get("QueueName"),
            fifo=bool(props.get("FifoQueue", False)),
            attributes=attributes,
            dead_letter_id=_one_ref(
                redrive.get("deadLetterTargetArn"), types, ("AWS::SQS::Queue",)
            ),
            max_receive_count=_int(redrive.get("maxReceiveCount"), None),
        )

    tables: dict[str, Table] = {}
    for lid, props in of_type("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"):
        ttl = props.get("TimeToLiveSpecification") or {}
        tables[lid] = Table(
            logical_id=lid,
            name=props.get("TableName"),
            key_schema=tuple(props.get("KeySchema") or ()),
            attribute_definitions=tuple(props.get("AttributeDefinitions") or ()),
            global_secondary_indexes=tuple(props.get("GlobalSecondaryIndexes") or ()),
            local_secondary_indexes=tuple(props.get("LocalSecondaryIndexes") or ()),
            ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled", False) else None,
        )

    secrets: dict[str, Secret] = {}
    for lid, props in of_type("AWS::SecretsManager::Secret"):
        generate = props.get("GenerateSecretString") or {}
        secrets[lid] = Secret(
            logical_id=lid,
            name=props.get("Name"),
            string_template=generate.get("SecretStringTemplate"),
            generate_key=generate.get("GenerateStringKey"),
            literal=props.get("SecretString"),
        )

    mappings: list[EventSourceMapping] = []
    for lid, props in of_type("AWS::Lambda::EventSourceMapping"):
        queue_id = _one_ref(props.get("EventSourceArn"), types, ("AWS::SQS::Queue",))
        function_id = _function_of(props.get("FunctionName"), types, resources)
        if queue_id is None:
            continue  # streams and other sources are not emulated
        if function_id is None or function_id not in functions:
            raise TemplateError(f"event source mapping {lid} runs no local handler")
        scaling = props.get("ScalingConfig") or {}
        mappings.append(
            EventSourceMapping(
                logical_id=lid,
                function_id=function_id,
                queue_id=queue_id,
                batch_size=int(props.get("BatchSize", 10)),
                batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                maximum_concurrency=_int(scaling.get("MaximumConcurrency"), None),
                report_batch_item_failures="ReportBatchItemFailures"
                in (props.get("FunctionResponseTypes") or []),
                enabled=bool(props.get("Enabled", True)),
            )
        )

    return Model(
        api=api,
        functions=functions,
        mappings=tuple(mappings),
        queues=queues,
        tables=tables,
        secrets=secrets,
        resource_types=types,
    )


AttributeGetter = Callable[[str, str], str]


class Resolver:
    """Resolves CloudFormation intrinsic functions against local physical values.

    ``refs`` maps a logical id (or a pseudo parameter such as ``AWS::Region``)
    to what ``Ref`` returns; ``get_att(logical_id, attribute)`` answers
    ``Fn::GetAtt``. Unknown references raise :class:`TemplateError`.
    """

    def __init__(
        self,
        refs: Mapping[str, str],
        get_att: AttributeGetter,
        *,
        parameters: Mapping[str, Any] | None = None,
        conditions: Mapping[str, Any] | None = None,
    ) -> None:
        self._refs = refs
        self._get_att = get_att
        self._parameters = parameters or {}
        self._conditions = conditions or {}

    def _ref(self, name: str) -> str:
        if name in self._refs:
            return self._refs[name]
        param = self._parameters.get(name)
        if isinstance(param, dict) and "Default" in param:
            return str(param["Default"])
        raise TemplateError(f"cannot resolve Ref {name}")

    def _condition(self, name: str) -> bool:
        value = self._conditions.get(name)
        if value is None:
            raise TemplateError(f"unknown condition {name}")
        return bool(self.resolve(value))

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its local result."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self._ref(str(arg))
        if key == "Fn::GetAtt":
            lid, attr = arg.split(".", 1) if isinstance(arg, str) else (arg[0], arg[1])
            return self._get_att(str(lid), str(self.resolve(attr)))
        if key == "Fn::Join":
            sep, items = arg
            return str(sep).join(str(self.resolve(i)) for i in self.resolve(items))
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            local = {k: str(self.resolve(v)) for k, v in variables.items()}

            def sub(match: re.Match[str]) -> str:
                name = match.group(1)
                if name.startswith("!"):
                    return "${" + name[1:] + "}"
                if name in local:
                    return local[name]
                if "." in name and name not in self._refs:
                    lid, attr = name.split(".", 1)
                    return self._get_att(lid, attr)
                return self._ref(name)

            return re.sub(r"\$\{([^}]+)\}", sub, str(text))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text)).split(str(sep))
        if key == "Fn::If":
            cond, yes, no = arg
            return self.resolve(yes if self._condition(cond) else no)
        if key == "Fn::Equals":
            left, right = arg
            return self.resolve(left) == self.resolve(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Condition":
            return self._condition(str(arg))
        if key == "Fn::Base64":
            import base64

            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        if key.startswith("Fn::"):
            raise TemplateError(f"intrinsic {key} is not supported locally")
        return {key: self.resolve(arg)}
