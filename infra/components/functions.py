"""The seven Lambda functions of docs/architecture.md, their roles, logs and SQS triggers.

Handlers are named by dotted path only (``functions.handlers.<name>.handler``); this
module never imports them. Every function shares one code asset (see
``infra.bundling``) and differs by handler, memory, timeout, environment and grants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.bundling import lambda_code
from infra.config import StackSettings
from infra.nag import acknowledge

__all__ = ["FUNCTION_SPECS", "RUNTIME", "FunctionSpec", "GatewayFunctions", "log_retention"]

# The latest Python runtime aws-cdk-lib offers (cdk-nag L1 checks this too), on arm64:
# about 20% cheaper per GB-s than x86 for the same work (AWS-FACTS.md).
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One Lambda function: its handler module and its sizing, with the reason for it."""

    name: str
    description: str
    memory_mb: int
    timeout_seconds: int

    @property
    def handler(self) -> str:
        """The dotted handler path (docs/architecture.md, "Lambda functions")."""
        return f"functions.handlers.{self.name}.handler"


# Memory buys CPU on Lambda (1,769 MB = one vCPU): 256 MB keeps the Python cold start
# (botocore + powertools imports) near the low end for the small connection handlers;
# 512 MB for the functions that parse, decompress and forward frames of up to 128 KB.
# Timeouts: the authorizer and route handlers answer a waiting client (API Gateway
# gives an integration at most 29 s), so they fail fast; the workers post a batch of
# up to 10 messages to @connections and get 30 s, which makes their queues' visibility
# timeout 180 s (6x).
FUNCTION_SPECS: tuple[FunctionSpec, ...] = (
    FunctionSpec("authorizer", "$connect authorizer: verifies the token", 256, 5),
    FunctionSpec("connect", "$connect: registers the connection", 256, 10),
    FunctionSpec("disconnect", "$disconnect: removes the connection", 256, 10),
    FunctionSpec(
        "message", "$default and protocol routes: validates, delivers small fan-outs", 512, 10
    ),
    FunctionSpec("router", "bus consumer: fans out snapshots and presence", 512, 30),
    # The command lane's own worker: commands and results never wait behind a
    # fan-out or a presence storm on the bus (docs/architecture.md, "Lanes").
    FunctionSpec("commands", "command-lane consumer: routes commands and results", 512, 30),
    FunctionSpec("delivery", "delivery consumer: posts to connections", 512, 30),
)


class GatewayFunctions(Construct):
    """Creates every function of :data:`FUNCTION_SPECS` with its own role and log group.

    ``environment`` maps a function name to its environment variables. Each role starts
    with nothing but writing to its own log group (no managed policies); the stack adds
    grants with :meth:`role`. From ``settings``: ``bundle``, ``log_retention_days``,
    ``retain`` (the log groups) and each function's reserved concurrency (none: the
    function shares the account's pool).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: Mapping[str, Mapping[str, str]],
        settings: StackSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        code = lambda_code(bundle=settings.bundle, runtime=RUNTIME)
        reserved = {
            spec.name: settings.reserved_concurrency_of(spec.name) for spec in FUNCTION_SPECS
        }
        self.reserved: dict[str, int] = {
            name: value for name, value in reserved.items() if value is not None
        }
        retention = log_retention(settings.log_retention_days)
        retain_logs = settings.retain
        self.functions: dict[str, lambda_.Function] = {}
        self.specs: dict[str, FunctionSpec] = {}
        for spec in FUNCTION_SPECS:
            title = spec.name.capitalize()
            log_group = logs.LogGroup(
                self,
                f"{title}Logs",
                retention=retention,
                removal_policy=RemovalPolicy.RETAIN if retain_logs else RemovalPolicy.DESTROY,
            )
            role = iam.Role(
                self,
                f"{title}Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"tabrelay {spec.name} function",
            )
            log_group.grant_write(role)
            function = lambda_.Function(
                self,
                title,
                description=f"tabrelay {spec.description}",
                runtime=RUNTIME,
                architecture=ARCHITECTURE,
                code=code,
                handler=spec.handler,
                memory_size=spec.memory_mb,
                timeout=Duration.seconds(spec.timeout_seconds),
                environment=dict(environment[spec.name]),
                role=role,
                log_group=log_group,
                tracing=lambda_.Tracing.ACTIVE,
                reserved_concurrent_executions=self.reserved.get(spec.name),
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                (
                    "X-Ray PutTraceSegments and PutTelemetryRecords support no "
                    "resource-level permissions (active tracing adds them on Resource *)."
                ),
            )
            self._acknowledge_synchronous(function, spec.name)
            self.functions[spec.name] = function
            self.specs[spec.name] = spec

    def role(self, name: str) -> iam.IRole:
        """The execution role of the function ``name``."""
        role = self.functions[name].role
        assert role is not None  # created above
        return role

    def consume(
        self,
        name: str,
        queue: sqs.IQueue,
        *,
        batch_size: int,
        batching_window_seconds: int,
        max_concurrency: int,
    ) -> None:
        """Trigger ``name`` from ``queue`` with bounded batches and concurrency.

        Batch item failures are reported, so one bad record never retries its batch;
        what keeps failing goes to the queue's DLQ (an SQS mapping has no on-failure
        destination of its own). ``max_concurrency`` must stay within the function's
        reserved concurrency, if it has one: more would throttle the function's own batches.
        """
        reserved = self.reserved.get(name)
        if reserved is not None and max_concurrency > reserved:
            raise ValueError(
                f"the {name} event source's maximum concurrency {max_concurrency} exceeds "
                f"the function's reserved concurrency {reserved}"
            )
        function = self.functions[name]
        function.add_event_source(
            event_sources.SqsEventSource(
                queue,
                batch_size=batch_size,
                max_batching_window=Duration.seconds(batching_window_seconds),
                max_concurrency=max_concurrency,
                report_batch_item_failures=True,
            )
        )
        acknowledge(
            function,
            "Serverless-LambdaEventSourceMappingDestination",
            (
                "SQS event source mappings take no on-failure destination; records that "
                "keep failing are moved by the queue's redrive policy to its DLQ, which "
                "has a depth alarm."
            ),
        )

    @staticmethod
    def _acknowledge_synchronous(function: lambda_.Function, name: str) -> None:
        workers = {"router", "commands", "delivery"}
        trigger = "an SQS event source" if name in workers else "API Gateway"
        acknowledge(
            function,
            "Serverless-LambdaDLQ",
            (
                f"Invoked synchronously by {trigger}, never asynchronously: a function DLQ "
                "would never receive anything (SQS failures go to the queue's DLQ)."
            ),
        )


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def log_retention(days: int) -> logs.RetentionDays:
    """The CloudWatch Logs retention for ``days`` (one of the periods below)."""
    try:
        return _RETENTION[days]
    except KeyError:
        raise ValueError(f"logRetentionDays={days} is not one of {sorted(_RETENTION)}") from None
