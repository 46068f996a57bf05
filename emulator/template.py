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

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

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


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


Props = Mapping[str, Any]
T = TypeVar("T")

_API = "AWS::ApiGatewayV2::Api"
_INTEGRATION = "AWS::ApiGatewayV2::Integration"
_AUTHORIZER = "AWS::ApiGatewayV2::Authorizer"
_ROUTE = "AWS::ApiGatewayV2::Route"
_QUEUE = "AWS::SQS::Queue"
_LAMBDA_TYPES = ("AWS::Lambda::Function",)


def _of_type(resources: Mapping[str, Any], wanted: tuple[str, ...]) -> Iterator[tuple[str, Props]]:
    for lid, res in resources.items():
        if res.get("Type") in wanted:
            yield lid, res.get("Properties", {}) or {}


def _handler_of(props: Props) -> str | None:
    # Container-image or inline functions without a handler are not ours.
    handler = props.get("Handler")
    return handler if isinstance(handler, str) else None


@dataclass(frozen=True, slots=True)
class _Kind(Generic[T]):
    """One row of the dispatch table: the resource types one reader handles.

    ``read`` builds the record of one resource, or None to leave it out;
    ``of_api`` keeps only resources whose ``ApiId`` is the WebSocket API.
    """

    types: tuple[str, ...]
    read: Callable[[_Scope, str, Props], T | None]
    of_api: bool = False


@dataclass(frozen=True, slots=True)
class _Scope:
    """A template's resources, their types, and its one WebSocket API."""

    resources: Mapping[str, Any]
    types: Mapping[str, str]
    api_id: str
    api_props: Props

    @classmethod
    def of(cls, template: Mapping[str, Any]) -> _Scope:
        resources: Mapping[str, Any] = template.get("Resources", {})
        types = {lid: res.get("Type", "") for lid, res in resources.items()}
        apis = [
            (lid, props)
            for lid, props in _of_type(resources, (_API,))
            if str(props.get("ProtocolType", "")).upper() == "WEBSOCKET"
        ]
        if len(apis) != 1:
            raise TemplateError(f"expected exactly one WebSocket API, found {len(apis)}")
        return cls(resources, types, *apis[0])

    def ref(self, value: Any, *wanted: str) -> str | None:
        return _one_ref(value, self.types, wanted)

    def function_of(self, value: Any) -> str | None:
        """The Lambda function that ``value`` (a URI, a name, an alias) points at."""
        direct = self.ref(value, *_LAMBDA_TYPES)
        if direct is not None:
            return direct
        via = self.ref(value, "AWS::Lambda::Alias", "AWS::Lambda::Version")
        if via is not None:
            return self.ref(
                self.resources[via].get("Properties", {}).get("FunctionName"), *_LAMBDA_TYPES
            )
        return None

    def runs_locally(self, function_id: str) -> bool:
        """Whether the function ``function_id`` has a handler the emulator can import."""
        props = self.resources[function_id].get("Properties", {}) or {}
        return _handler_of(props) is not None

    def read(self, kind: _Kind[T]) -> dict[str, T]:
        """Every record of ``kind``, by logical id, in template order."""
        found: dict[str, T] = {}
        for lid, props in _of_type(self.resources, kind.types):
            if kind.of_api and self.ref(props.get("ApiId"), _API) != self.api_id:
                continue
            record = kind.read(self, lid, props)
            if record is not None:
                found[lid] = record
        return found


# ---------------------------------------------------------------- one reader per resource kind


def _integration_response(
    scope: _Scope, _lid: str, props: Props
) -> tuple[str, IntegrationResponse]:
    integration = scope.ref(props.get("IntegrationId"), _INTEGRATION)
    if integration is None:
        raise TemplateError("an IntegrationResponse refers to no integration")
    return integration, IntegrationResponse(
        key=str(props.get("IntegrationResponseKey", "$default")),
        templates=dict(props.get("ResponseTemplates") or {}),
        template_selection_expression=props.get("TemplateSelectionExpression"),
    )


def _integration(scope: _Scope, lid: str, props: Props) -> Integration:
    kind = str(props.get("IntegrationType", "")).upper()
    function_id = None
    if kind in ("AWS_PROXY", "AWS"):
        function_id = scope.function_of(props.get("IntegrationUri"))
        if function_id is None:
            raise TemplateError(f"integration {lid} names no Lambda function in this template")
    return Integration(
        logical_id=lid,
        type=kind,
        function_id=function_id,
        request_templates=dict(props.get("RequestTemplates") or {}),
        template_selection_expression=props.get("TemplateSelectionExpression"),
    )


def _authorizer(scope: _Scope, lid: str, props: Props) -> Authorizer:
    sources = props.get("IdentitySource") or []
    if isinstance(sources, str):
        sources = [s.strip() for s in sources.split(",")]
    return Authorizer(
        logical_id=lid,
        type=str(props.get("AuthorizerType", "REQUEST")).upper(),
        function_id=scope.function_of(props.get("AuthorizerUri")),
        identity_sources=tuple(str(s) for s in sources),
        name=str(props.get("Name", lid)),
    )


def _route(scope: _Scope, lid: str, props: Props) -> Route:
    target = props.get("Target")
    integration = scope.ref(target, _INTEGRATION)
    if target is not None and integration is None:
        raise TemplateError(f"route {lid} targets no integration of this template")
    return Route(
        logical_id=lid,
        key=str(props["RouteKey"]),
        integration_id=integration,
        authorization_type=str(props.get("AuthorizationType", "NONE")).upper(),
        authorizer_id=scope.ref(props.get("AuthorizerId"), _AUTHORIZER),
        response_selection_expression=props.get("RouteResponseSelectionExpression"),
        has_route_response=False,
    )


def _route_response(scope: _Scope, _lid: str, props: Props) -> str | None:
    """The route this route response answers for."""
    return scope.ref(props.get("RouteId"), _ROUTE)


def _stage_props(_scope: _Scope, _lid: str, props: Props) -> Props:
    return props


def _stage(props: Props) -> Stage:
    defaults = props.get("DefaultRouteSettings") or {}
    route_limits: dict[str, tuple[int | None, float | None]] = {}
    for key, settings in (props.get("RouteSettings") or {}).items():
        route_limits[str(key)] = (
            _int(settings.get("ThrottlingBurstLimit"), None),
            _float(settings.get("ThrottlingRateLimit")),
        )
    return Stage(
        name=str(props.get("StageName", "$default")),
        burst_limit=_int(defaults.get("ThrottlingBurstLimit"), None),
        rate_limit=_float(defaults.get("ThrottlingRateLimit")),
        route_limits=route_limits,
    )


def _function(_scope: _Scope, lid: str, props: Props) -> Function | None:
    handler = _handler_of(props)
    if handler is None:
        return None
    return Function(
        logical_id=lid,
        handler=handler,
        environment=dict((props.get("Environment") or {}).get("Variables") or {}),
        memory_mb=int(props.get("MemorySize", 128)),
        timeout_s=float(props.get("Timeout", 3)),
        reserved_concurrency=_int(props.get("ReservedConcurrentExecutions"), None),
        name=props.get("FunctionName"),
    )


#: Queue properties the emulator passes on to moto as queue attributes.
_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "ContentBasedDeduplication",
)


def _queue(scope: _Scope, lid: str, props: Props) -> Queue:
    redrive = props.get("RedrivePolicy") or {}
    if isinstance(redrive, str):
        redrive = json.loads(redrive)
    attributes: dict[str, str] = {}
    for name in _QUEUE_ATTRIBUTES:
        if props.get(name) is not None:
            value = props[name]
            attributes[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return Queue(
        logical_id=lid,
        name=props.get("QueueName"),
        fifo=bool(props.get("FifoQueue", False)),
        attributes=attributes,
        dead_letter_id=scope.ref(redrive.get("deadLetterTargetArn"), _QUEUE),
        max_receive_count=_int(redrive.get("maxReceiveCount"), None),
    )


def _table(_scope: _Scope, lid: str, props: Props) -> Table:
    ttl = props.get("TimeToLiveSpecification") or {}
    return Table(
        logical_id=lid,
        name=props.get("TableName"),
        key_schema=tuple(props.get("KeySchema") or ()),
        attribute_definitions=tuple(props.get("AttributeDefinitions") or ()),
        global_secondary_indexes=tuple(props.get("GlobalSecondaryIndexes") or ()),
        local_secondary_indexes=tuple(props.get("LocalSecondaryIndexes") or ()),
        ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled", False) else None,
    )


def _secret(_scope: _Scope, lid: str, props: Props) -> Secret:
    generate = props.get("GenerateSecretString") or {}
    return Secret(
        logical_id=lid,
        name=props.get("Name"),
        string_template=generate.get("SecretStringTemplate"),
        generate_key=generate.get("GenerateStringKey"),
        literal=props.get("SecretString"),
    )


def _mapping(scope: _Scope, lid: str, props: Props) -> EventSourceMapping | None:
    queue_id = scope.ref(props.get("EventSourceArn"), _QUEUE)
    function_id = scope.function_of(props.get("FunctionName"))
    if queue_id is None:
        return None  # streams and other sources are not emulated
    if function_id is None or not scope.runs_locally(function_id):
        raise TemplateError(f"event source mapping {lid} runs no local handler")
    scaling = props.get("ScalingConfig") or {}
    return EventSourceMapping(
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


# The dispatch table: which reader handles which resource types.
_INTEGRATION_RESPONSES = _Kind(
    ("AWS::ApiGatewayV2::IntegrationResponse",), _integration_response, of_api=True
)
_INTEGRATIONS = _Kind((_INTEGRATION,), _integration, of_api=True)
_AUTHORIZERS = _Kind((_AUTHORIZER,), _authorizer, of_api=True)
_ROUTES = _Kind((_ROUTE,), _route, of_api=True)
_ROUTE_RESPONSES = _Kind(("AWS::ApiGatewayV2::RouteResponse",), _route_response, of_api=True)
_STAGES = _Kind(("AWS::ApiGatewayV2::Stage",), _stage_props, of_api=True)
_FUNCTIONS = _Kind(_LAMBDA_TYPES, _function)
_QUEUES = _Kind((_QUEUE,), _queue)
_TABLES = _Kind(("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"), _table)
_SECRETS = _Kind(("AWS::SecretsManager::Secret",), _secret)
_MAPPINGS = _Kind(("AWS::Lambda::EventSourceMapping",), _mapping)


def _api(scope: _Scope) -> Api:
    """The WebSocket API with its integrations, authorizers, routes and stage."""
    responses: dict[str, list[IntegrationResponse]] = {}
    for integration_id, response in scope.read(_INTEGRATION_RESPONSES).values():
        responses.setdefault(integration_id, []).append(response)
    integrations = {
        lid: replace(integration, responses=tuple(responses.get(lid, ())))
        for lid, integration in scope.read(_INTEGRATIONS).items()
    }
    authorizers = scope.read(_AUTHORIZERS)
    routes_by_id = scope.read(_ROUTES)
    with_response = set(scope.read(_ROUTE_RESPONSES).values())
    routes = {
        r.key: replace(r, has_route_response=r.logical_id in with_response)
        for r in routes_by_id.values()
    }
    stages = list(scope.read(_STAGES).values())
    if not stages:
        raise TemplateError("the WebSocket API has no stage")
    props = scope.api_props
    return Api(
        logical_id=scope.api_id,
        name=str(props.get("Name", scope.api_id)),
        route_selection_expression=str(
            props.get("RouteSelectionExpression", "$request.body.action")
        ),
        routes=routes,
        integrations=integrations,
        authorizers=authorizers,
        stage=_stage(stages[0]),
    )


def _check_references(api: Api, functions: Mapping[str, Function]) -> None:
    for route in api.routes.values():
        if route.integration_id not in (None, *api.integrations):
            raise TemplateError(f"route {route.key} targets a missing integration")
    for integration in api.integrations.values():
        if integration.function_id is not None and integration.function_id not in functions:
            raise TemplateError(f"integration {integration.logical_id} runs no local handler")


def parse_template(template: Mapping[str, Any]) -> Model:
    """Read the WebSocket API, functions, event sources, queues, tables and secrets.

    Raises :class:`TemplateError` if there is no WebSocket API, no stage, or a
    route or integration points at something that does not exist.
    """
    scope = _Scope.of(template)
    api = _api(scope)
    functions = scope.read(_FUNCTIONS)
    _check_references(api, functions)
    queues = scope.read(_QUEUES)
    tables = scope.read(_TABLES)
    secrets = scope.read(_SECRETS)
    return Model(
        api=api,
        functions=functions,
        mappings=tuple(scope.read(_MAPPINGS).values()),
        queues=queues,
        tables=tables,
        secrets=secrets,
        resource_types=scope.types,
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
        intrinsic = _INTRINSICS.get(key)
        if intrinsic is not None:
            return intrinsic(self, arg)
        if key.startswith("Fn::"):
            raise TemplateError(f"intrinsic {key} is not supported locally")
        return {key: self.resolve(arg)}

    # One method per intrinsic function; ``arg`` is its unresolved argument.

    def _fn_ref(self, arg: Any) -> Any:
        return self._ref(str(arg))

    def _fn_get_att(self, arg: Any) -> Any:
        lid, attr = arg.split(".", 1) if isinstance(arg, str) else (arg[0], arg[1])
        return self._get_att(str(lid), str(self.resolve(attr)))

    def _fn_join(self, arg: Any) -> Any:
        sep, items = arg
        return str(sep).join(str(self.resolve(i)) for i in self.resolve(items))

    def _fn_sub(self, arg: Any) -> Any:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: str(self.resolve(v)) for k, v in variables.items()}
        return re.sub(
            r"\$\{([^}]+)\}", lambda match: self._sub_variable(match.group(1), local), str(text)
        )

    def _sub_variable(self, name: str, local: Mapping[str, str]) -> str:
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in local:
            return local[name]
        if "." in name and name not in self._refs:
            lid, attr = name.split(".", 1)
            return self._get_att(lid, attr)
        return self._ref(name)

    def _fn_select(self, arg: Any) -> Any:
        index, items = arg
        return self.resolve(items)[int(self.resolve(index))]

    def _fn_split(self, arg: Any) -> Any:
        sep, text = arg
        return str(self.resolve(text)).split(str(sep))

    def _fn_if(self, arg: Any) -> Any:
        cond, yes, no = arg
        return self.resolve(yes if self._condition(cond) else no)

    def _fn_equals(self, arg: Any) -> Any:
        left, right = arg
        return self.resolve(left) == self.resolve(right)

    def _fn_not(self, arg: Any) -> Any:
        return not self.resolve(arg[0])

    def _fn_and(self, arg: Any) -> Any:
        return all(self.resolve(a) for a in arg)

    def _fn_or(self, arg: Any) -> Any:
        return any(self.resolve(a) for a in arg)

    def _fn_condition(self, arg: Any) -> Any:
        return self._condition(str(arg))

    def _fn_base64(self, arg: Any) -> Any:
        return base64.b64encode(str(self.resolve(arg)).encode()).decode()


_INTRINSICS: Mapping[str, Callable[[Resolver, Any], Any]] = {
    "Ref": Resolver._fn_ref,
    "Fn::GetAtt": Resolver._fn_get_att,
    "Fn::Join": Resolver._fn_join,
    "Fn::Sub": Resolver._fn_sub,
    "Fn::Select": Resolver._fn_select,
    "Fn::Split": Resolver._fn_split,
    "Fn::If": Resolver._fn_if,
    "Fn::Equals": Resolver._fn_equals,
    "Fn::Not": Resolver._fn_not,
    "Fn::And": Resolver._fn_and,
    "Fn::Or": Resolver._fn_or,
    "Condition": Resolver._fn_condition,
    "Fn::Base64": Resolver._fn_base64,
}
