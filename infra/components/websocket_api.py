"""The API Gateway WebSocket API: authorizer, routes, the keep-alive mocks, stage and logs.

Routes follow docs/architecture.md: ``$connect`` behind a Lambda REQUEST authorizer
reading ``route.request.querystring.token`` (browsers cannot set headers on a
WebSocket); ``$disconnect``; ``$default`` and the protocol routes to the message
function. Only the routes that always reply (:data:`REPLYING_ROUTES`) have a route
response, so the handler's reply is its response body; API Gateway may bill an
empty one for every frame of such a route, so the one-way routes
(:data:`ONE_WAY_ROUTES`) have none and the handler posts their errors. ``ping`` is answered ``pong`` by a MOCK
integration (no Lambda call); ``keepalive`` goes to a MOCK integration with no
route response: nothing is called, nothing answers, only the inbound message is billed.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from constructs import Construct

from infra.components.functions import log_retention
from infra.config import StackSettings
from infra.nag import acknowledge

__all__ = [
    "IDENTITY_SOURCE",
    "KEEPALIVE_ROUTE",
    "MESSAGE_ROUTES",
    "ONE_WAY_ROUTES",
    "PONG",
    "REPLYING_ROUTES",
    "ROUTE_SELECTION_EXPRESSION",
    "WebSocketGateway",
]

ROUTE_SELECTION_EXPRESSION = "$request.body.action"
IDENTITY_SOURCE = "route.request.querystring.token"
# The protocol's client actions that the message function handles (wire protocol v1).
MESSAGE_ROUTES = ("snapshot", "command", "result", "subscribe", "unsubscribe", "ack", "list")
# Routes of the message function whose every frame gets a reply: these have a route
# response. The others reply only with an error, which the handler posts (the same
# sets as functions/logic/gateway.py's, held equal by tests/infrastructure).
REPLYING_ROUTES = ("$default", "subscribe", "unsubscribe", "list")
ONE_WAY_ROUTES = ("snapshot", "command", "result", "ack")
# The one-way keep-alive (tabrelay.wire.KEEPALIVE_ACTION): a MOCK, no route response.
KEEPALIVE_ROUTE = "keepalive"
_MANAGEMENT_METHODS = ("POST", "GET", "DELETE")
PONG = json.dumps({"action": "pong"}, separators=(",", ":"))
_ROUTE_ONLY_AUTHORIZATION = (
    "WebSocket APIs authorize only the $connect route; every later message on the "
    "connection is covered by the $connect authorizer's decision and its context."
)


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """``IAccessLogSettings`` is an interface in Python (no struct): a plain holder."""

    def __init__(
        self, destination: apigwv2.IAccessLogDestination, log_format: apigw.AccessLogFormat
    ) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class WebSocketGateway(Construct):
    """The API and its stage; routes are added by :meth:`add_routes` once functions exist.

    The functions need the API id (``CALLBACK_URL``) before the routes can name them,
    so creating the API and wiring its routes are two steps.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings) -> None:
        """From ``settings``: the stage, its throttling, the access logs' retention
        (and ``retain``), and whether to set the account's logging role."""
        super().__init__(scope, construct_id)
        stage_name = settings.stage
        retain_logs = settings.retain
        self.stage_name = stage_name
        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            api_name=f"tabrelay-{stage_name}",
            description="tabrelay: WebSocket gateway for browser agents",
            route_selection_expression=ROUTE_SELECTION_EXPRESSION,
        )
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=log_retention(settings.log_retention_days),
            removal_policy=RemovalPolicy.RETAIN if retain_logs else RemovalPolicy.DESTROY,
        )
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=stage_name,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=settings.throttle_rate_limit, burst_limit=settings.throttle_burst_limit
            ),
            access_log_settings=_AccessLogSettings(
                apigwv2.LogGroupLogDestination(self.access_logs),
                apigw.AccessLogFormat.custom(json.dumps(_ACCESS_LOG_FIELDS)),
            ),
        )
        if settings.api_gateway_account_role:
            self._add_account_logging_role()

    def _add_account_logging_role(self) -> None:
        """API Gateway writes WebSocket access logs only once the account (per Region) names
        a CloudWatch Logs role. Turn off with ``-c apiGatewayAccountRole=false`` when the
        account already has one. The role is retained: other APIs may rely on the setting.
        """
        role = iam.Role(
            self,
            "ApiGatewayLoggingRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                )
            ],
        )
        role.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The AWS-maintained policy API Gateway documents for its account-wide logging "
            "role; API Gateway creates the log groups it writes, so they are not known here.",
        )
        account = apigw.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn)
        account.apply_removal_policy(RemovalPolicy.RETAIN)
        self.stage.node.add_dependency(account)

    def add_custom_domain(
        self,
        *,
        domain_name: str,
        certificate_arn: str,
        hosted_zone_id: str = "",
        hosted_zone_name: str = "",
    ) -> apigwv2.DomainName:
        """Serve the stage at ``wss://{domain_name}`` (a regional custom domain, TLS 1.2).

        The name outlives the API: replacing the API moves the mapping, and clients keep
        their URL. With ``hosted_zone_id`` the Route 53 alias record is created here;
        otherwise point the name at the returned domain's ``regional_domain_name``.
        """
        certificate = acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn)
        domain = apigwv2.DomainName(
            self,
            "Domain",
            domain_name=domain_name,
            certificate=certificate,
            endpoint_type=apigwv2.EndpointType.REGIONAL,
            security_policy=apigwv2.SecurityPolicy.TLS_1_2,
        )
        # No mapping key: the stage is the domain's root, wss://{domain_name}?token=...
        apigwv2.ApiMapping(
            self, "DomainMapping", api=self.api, domain_name=domain, stage=self.stage
        )
        if hosted_zone_id:
            zone = (
                route53.HostedZone.from_hosted_zone_attributes(
                    self, "Zone", hosted_zone_id=hosted_zone_id, zone_name=hosted_zone_name
                )
                if hosted_zone_name
                else route53.HostedZone.from_hosted_zone_id(self, "Zone", hosted_zone_id)
            )
            route53.ARecord(
                self,
                "DomainAlias",
                zone=zone,
                # Fully qualified (trailing dot): needs no zone name.
                record_name=f"{domain_name}.",
                target=route53.RecordTarget.from_alias(
                    route53_targets.ApiGatewayv2DomainProperties(
                        domain.regional_domain_name, domain.regional_hosted_zone_id
                    )
                ),
            )
        return domain

    @property
    def callback_url(self) -> str:
        """The Management API endpoint: ``https://{api}.execute-api.{region}.{suffix}/{stage}``."""
        stack = Stack.of(self)
        return (
            f"https://{self.api.api_id}.execute-api.{stack.region}.{stack.url_suffix}"
            f"/{self.stage_name}"
        )

    @property
    def url(self) -> str:
        """The ``wss://`` URL clients connect to (add ``?token=...``)."""
        stack = Stack.of(self)
        return (
            f"wss://{self.api.api_id}.execute-api.{stack.region}.{stack.url_suffix}"
            f"/{self.stage_name}"
        )

    def grant_manage_connections(self, role: iam.IRole) -> None:
        """``execute-api:ManageConnections`` on this API and stage only (POST, GET, DELETE).

        The trailing ``@connections/*`` stands for the connection id, which is only known
        at run time: that wildcard is the narrowest the Management API allows.
        """
        stack = Stack.of(self)
        cfn_api = self.api.node.default_child
        assert isinstance(cfn_api, apigwv2.CfnApi)
        api_logical_id = stack.resolve(stack.get_logical_id(cfn_api))
        resources = []
        for method in _MANAGEMENT_METHODS:
            resources.append(
                stack.format_arn(
                    service="execute-api",
                    resource=self.api.api_id,
                    resource_name=f"{self.stage_name}/{method}/@connections/*",
                    arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                )
            )
            finding = (
                "Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
                f"<{api_logical_id}>/{self.stage_name}/{method}/@connections/*"
            )
            acknowledge(
                role,
                f"AwsSolutions-IAM5[{finding}]",
                f"{method} @connections/{{connectionId}} on this API's {self.stage_name} "
                "stage only; the connection id is known only at run time.",
            )
        iam.Grant.add_to_principal(
            grantee=role, actions=["execute-api:ManageConnections"], resource_arns=resources
        )

    def add_routes(
        self,
        *,
        authorizer: lambda_.IFunction,
        connect: lambda_.IFunction,
        disconnect: lambda_.IFunction,
        message: lambda_.IFunction,
    ) -> None:
        """Wire every route of the protocol (see the module docstring)."""
        connect_route = self.api.add_route(
            "$connect",
            integration=integrations.WebSocketLambdaIntegration("Connect", connect),
            authorizer=authorizers.WebSocketLambdaAuthorizer(
                "TokenAuthorizer", authorizer, identity_source=[IDENTITY_SOURCE]
            ),
        )
        disconnect_route = self.api.add_route(
            "$disconnect",
            integration=integrations.WebSocketLambdaIntegration("Disconnect", disconnect),
        )
        acknowledge(disconnect_route, "AwsSolutions-APIG4", _ROUTE_ONLY_AUTHORIZATION)
        message_integration = integrations.WebSocketLambdaIntegration("Message", message)
        for route_key in ("$default", *MESSAGE_ROUTES):
            route = self.api.add_route(
                route_key,
                integration=message_integration,
                return_response=route_key in REPLYING_ROUTES,
            )
            acknowledge(route, "AwsSolutions-APIG4", _ROUTE_ONLY_AUTHORIZATION)
        self._add_ping()
        self._add_keepalive()
        self.connect_route = connect_route

    def _add_ping(self) -> None:
        """``ping`` -> ``{"action":"pong"}`` from a MOCK integration (no Lambda)."""
        mock = apigwv2.CfnIntegration(
            self,
            "PingIntegration",
            api_id=self.api.api_id,
            integration_type="MOCK",
            request_templates={"$default": json.dumps({"statusCode": 200})},
            template_selection_expression="\\$default",
        )
        apigwv2.CfnIntegrationResponse(
            self,
            "PingIntegrationResponse",
            api_id=self.api.api_id,
            integration_id=mock.ref,
            integration_response_key="$default",
            response_templates={"$default": PONG},
            template_selection_expression="\\$default",
        )
        route = apigwv2.CfnRoute(
            self,
            "PingRoute",
            api_id=self.api.api_id,
            route_key="ping",
            authorization_type="NONE",
            target=f"integrations/{mock.ref}",
            route_response_selection_expression="$default",
        )
        apigwv2.CfnRouteResponse(
            self,
            "PingRouteResponse",
            api_id=self.api.api_id,
            route_id=route.ref,
            route_response_key="$default",
        )
        acknowledge(route, "AwsSolutions-APIG4", _ROUTE_ONLY_AUTHORIZATION)

    def _add_keepalive(self) -> None:
        """``keepalive`` -> nothing: a MOCK integration and no route response, so the
        frame resets API Gateway's idle timer and costs one inbound message, no Lambda
        call and no billed reply."""
        mock = apigwv2.CfnIntegration(
            self,
            "KeepaliveIntegration",
            api_id=self.api.api_id,
            integration_type="MOCK",
            request_templates={"$default": json.dumps({"statusCode": 200})},
            template_selection_expression="\\$default",
        )
        route = apigwv2.CfnRoute(
            self,
            "KeepaliveRoute",
            api_id=self.api.api_id,
            route_key=KEEPALIVE_ROUTE,
            authorization_type="NONE",
            target=f"integrations/{mock.ref}",
        )
        acknowledge(route, "AwsSolutions-APIG4", _ROUTE_ONLY_AUTHORIZATION)


# JSON access log: one line per connect, message and disconnect, with what an operator
# needs to follow a connection and to see integration and authorizer failures.
_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "connectionId": "$context.connectionId",
    "messageId": "$context.messageId",
    "integrationStatus": "$context.integrationStatus",
    "integrationLatency": "$context.integrationLatency",
    "authorizerError": "$context.authorizer.error",
    "errorMessage": "$context.error.message",
    "tenant": "$context.authorizer.tenant",
    "role": "$context.authorizer.role",
}
