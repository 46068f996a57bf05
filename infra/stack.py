"""The tabrelay stack: composes the capability constructs, nothing else.

Reads its settings from CDK context (``infra.config``) and makes no AWS call at
synth time, so ``cdk synth`` needs no credentials.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from constructs import Construct

from infra.components.functions import FUNCTION_SPECS, GatewayFunctions
from infra.components.monitoring import METRICS_NAMESPACE, Monitoring, Watched
from infra.components.queues import RelayQueue
from infra.components.secrets import SigningSecret
from infra.components.storage import ConnectionTable
from infra.components.websocket_api import WebSocketGateway
from infra.config import StackSettings

__all__ = ["GATEWAY_FUNCTIONS", "WORKER_QUEUES", "TabRelayStack"]

# Functions that serve connections and messages (everything but the authorizer).
GATEWAY_FUNCTIONS = ("connect", "disconnect", "message", "router", "commands", "delivery")
# queue name -> the function that consumes it: the bus (snapshots, presence), the
# command lane (commands, results) and the delivery queue (retries, parks, timeouts).
WORKER_QUEUES = {"bus": "router", "commands": "commands", "delivery": "delivery"}


class TabRelayStack(Stack):
    """API Gateway WebSocket API, Lambda handlers, SQS bus/command lane/delivery, DynamoDB,
    secret, alarms."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: StackSettings, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.settings = settings
        timeouts = {spec.name: spec.timeout_seconds for spec in FUNCTION_SPECS}

        table = ConnectionTable(self, "Connections", retain=settings.retain)
        secret = SigningSecret(self, "SigningKey", retain=settings.retain)
        queues = {
            name: RelayQueue(
                self,
                name.capitalize(),
                consumer_timeout=Duration.seconds(timeouts[consumer]),
                max_receive_count=settings.max_receive_count,
            )
            for name, consumer in WORKER_QUEUES.items()
        }
        gateway = WebSocketGateway(self, "WebSocket", settings=settings)

        powertools = {
            "POWERTOOLS_SERVICE_NAME": "tabrelay",
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": settings.log_level,
        }
        gateway_environment = {
            "TABLE_NAME": table.table.table_name,
            "BUS_QUEUE_URL": queues["bus"].queue.queue_url,
            "DELIVERY_QUEUE_URL": queues["delivery"].queue.queue_url,
            "COMMAND_QUEUE_URL": queues["commands"].queue.queue_url,
            "CALLBACK_URL": gateway.callback_url,
            "MAX_UNACKED": str(settings.max_unacked),
            "RATE_LIMIT_PER_SECOND": str(settings.rate_limit_per_second),
            "CONNECTION_TTL_SECONDS": str(settings.connection_ttl_seconds),
            "PARK_DELAY_SECONDS": str(settings.park_delay_seconds),
            "MAX_PARKS": str(settings.max_parks),
            "RECIPIENT_CACHE_SECONDS": str(settings.recipient_cache_seconds),
            "PRESENCE_CHUNK": str(settings.presence_chunk),
            "FAN_OUT_CONCURRENCY": str(settings.fan_out_concurrency),
            **powertools,
        }
        environment = {name: gateway_environment for name in GATEWAY_FUNCTIONS}
        environment["authorizer"] = {
            "SIGNING_SECRET_ID": secret.secret.secret_arn,
            "SECRET_MAX_AGE_SECONDS": str(settings.secret_max_age_seconds),
            **powertools,
        }
        functions = GatewayFunctions(self, "Functions", environment=environment, settings=settings)

        secret.secret.grant_read(functions.role("authorizer"))
        for name in GATEWAY_FUNCTIONS:
            role = functions.role(name)
            table.grant_data(role)
            for relay in queues.values():
                relay.queue.grant_send_messages(role)
            gateway.grant_manage_connections(role)

        functions.consume(
            "router",
            queues["bus"].queue,
            batch_size=settings.router_batch_size,
            batching_window_seconds=settings.router_batching_window_seconds,
            max_concurrency=settings.router_max_concurrency,
        )
        functions.consume(
            "commands",
            queues["commands"].queue,
            batch_size=settings.commands_batch_size,
            batching_window_seconds=settings.commands_batching_window_seconds,
            max_concurrency=settings.commands_max_concurrency,
        )
        functions.consume(
            "delivery",
            queues["delivery"].queue,
            batch_size=settings.delivery_batch_size,
            batching_window_seconds=settings.delivery_batching_window_seconds,
            max_concurrency=settings.delivery_max_concurrency,
        )
        gateway.add_routes(
            authorizer=functions.functions["authorizer"],
            connect=functions.functions["connect"],
            disconnect=functions.functions["disconnect"],
            message=functions.functions["message"],
        )
        Monitoring(
            self,
            "Monitoring",
            watched=Watched(gateway.api.api_id, functions.functions, queues, table.table),
            settings=settings,
        )

        CfnOutput(self, "WebSocketUrl", value=gateway.url, description="Connect here (?token=...)")
        if settings.domain_name:
            domain = gateway.add_custom_domain(
                domain_name=settings.domain_name,
                certificate_arn=settings.certificate_arn,
                hosted_zone_id=settings.hosted_zone_id,
                hosted_zone_name=settings.hosted_zone_name,
            )
            CfnOutput(
                self,
                "CustomDomainUrl",
                value=f"wss://{settings.domain_name}",
                description="Connect here (?token=...): survives replacing the API",
            )
            CfnOutput(
                self,
                "CustomDomainTarget",
                value=domain.regional_domain_name,
                description="Point the custom domain's DNS here (alias or CNAME)",
            )
        CfnOutput(
            self,
            "CallbackUrl",
            value=gateway.callback_url,
            description="Management API (@connections) endpoint",
        )
        CfnOutput(self, "TableName", value=table.table.table_name)
        CfnOutput(
            self,
            "SigningSecretArn",
            value=secret.secret.secret_arn,
            description="HS256 signing key for tokens (make token SECRET_ID=...)",
        )
