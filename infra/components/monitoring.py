"""Alarms and the CloudWatch dashboard.

Alarms publish to one KMS-encrypted SNS topic (subscribe an address with the context
value ``alarmEmail``). The dashboard reads the API Gateway, Lambda and SQS metrics and
the custom metrics the handlers publish with Powertools in the namespace
:data:`METRICS_NAMESPACE`: ``Relayed``, ``Conflated``, ``Dropped``,
``DeliveryRetried`` (dimension ``kind``: the message's action), ``ThrottledSnapshotDropped``
(snapshot posts answered 429, dropped and counted in ``missed``), ``FanOutHandedOff``
(inline fan-outs that ran short of time and handed their rest to the router), ``Gone``
(posts answered 410), ``Errors`` (dimension ``code``) and ``DeliveryLatencyMs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.components.queues import RelayQueue
from infra.config import StackSettings
from infra.nag import acknowledge

__all__ = [
    "AUTHORIZER_ERROR_RATE_PERCENT",
    "CUSTOM_METRICS",
    "METRICS_NAMESPACE",
    "Monitoring",
    "Watched",
]

METRICS_NAMESPACE = "TabRelay"
CUSTOM_METRICS = (
    "Relayed",
    "Conflated",
    "Dropped",
    "DeliveryRetried",
    "ThrottledSnapshotDropped",
    "FanOutHandedOff",
    "Gone",
    "Errors",
    "DeliveryLatencyMs",
)
_MINUTE = Duration.minutes(1)
_FIVE_MINUTES = Duration.minutes(5)
#: The authorizer pages when this share of its invocations fail, two periods running:
#: refused tokens are Deny answers, not errors, so an error is a real failure (the
#: key could not be read), but one cold container's timeout is not worth a page.
AUTHORIZER_ERROR_RATE_PERCENT = 5


def _search(metric_name: str, statistic: str, period_seconds: int) -> str:
    # Any dimension set: Powertools adds `service`, Errors adds `code`.
    return (
        f'SEARCH(\'Namespace="{METRICS_NAMESPACE}" MetricName="{metric_name}"\', '
        f"'{statistic}', {period_seconds})"
    )


@dataclass(frozen=True, slots=True)
class Watched:
    """What the alarms and the dashboard watch."""

    api_id: str
    functions: Mapping[str, lambda_.IFunction]
    queues: Mapping[str, RelayQueue]
    table: dynamodb.ITable


class Monitoring(Construct):
    """Alarms on what needs a human, and one dashboard of the relay's health.

    From ``settings``: the stage, ``oldest_message_alarm_seconds``, ``alarm_email``
    and ``retain`` (the topic's key)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, watched: Watched, settings: StackSettings
    ) -> None:
        super().__init__(scope, construct_id)
        api_id, functions, queues = watched.api_id, watched.functions, watched.queues
        stage_name, alarm_email, retain = settings.stage, settings.alarm_email, settings.retain
        oldest_message_alarm_seconds = settings.oldest_message_alarm_seconds
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description="tabrelay alarm topic encryption",
            enable_key_rotation=True,
            # Destroying schedules deletion (after the KMS waiting period) for dev stages.
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        )
        # CloudWatch publishes alarm notifications to the encrypted topic.
        key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.topic = sns.Topic(
            self, "AlarmTopic", display_name="tabrelay alarms", master_key=key, enforce_ssl=True
        )
        if alarm_email:
            subscription = self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
            acknowledge(
                subscription,
                "Serverless-SNSRedrivePolicy",
                "An operator's e-mail address for alarms: SNS retries e-mail delivery "
                "itself, and the alarm state stays visible in CloudWatch if mail fails.",
            )
        self._action = cloudwatch_actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

        for name, relay in queues.items():
            title = name.capitalize()
            self._alarm(
                f"{title}DeadLetters",
                relay.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=_MINUTE, statistic="Maximum"
                ),
                threshold=0,
                description=f"Messages in the {name} DLQ: deliveries that kept failing.",
            )
            self._alarm(
                f"{title}OldestMessage",
                relay.queue.metric_approximate_age_of_oldest_message(
                    period=_MINUTE, statistic="Maximum"
                ),
                threshold=oldest_message_alarm_seconds,
                description=f"The {name} queue is falling behind (oldest message age, s).",
                evaluation_periods=3,
            )
        for name, function in functions.items():
            title = name.capitalize()
            if name == "authorizer":
                self._alarm(
                    f"{title}ErrorRate",
                    cloudwatch.MathExpression(
                        expression="IF(invocations > 0, 100 * errors / invocations, 0)",
                        using_metrics={
                            "errors": function.metric_errors(statistic="Sum"),
                            "invocations": function.metric_invocations(statistic="Sum"),
                        },
                        label="authorizer error rate (%)",
                        period=_FIVE_MINUTES,
                    ),
                    threshold=AUTHORIZER_ERROR_RATE_PERCENT,
                    description=(
                        f"Over {AUTHORIZER_ERROR_RATE_PERCENT}% of authorizer invocations "
                        "failed (not refused tokens: those are Deny answers)."
                    ),
                    evaluation_periods=2,
                )
            else:
                self._alarm(
                    f"{title}Errors",
                    function.metric_errors(period=_FIVE_MINUTES, statistic="Sum"),
                    threshold=0,
                    description=f"The {name} function raised errors.",
                )
            self._alarm(
                f"{title}Throttles",
                function.metric_throttles(period=_FIVE_MINUTES, statistic="Sum"),
                threshold=0,
                description=f"The {name} function was throttled.",
            )
        self._alarm(
            "TableThrottles",
            cloudwatch.MathExpression(
                expression="reads + writes",
                using_metrics={
                    "reads": watched.table.metric(
                        "ReadThrottleEvents", statistic="Sum", period=_FIVE_MINUTES
                    ),
                    "writes": watched.table.metric(
                        "WriteThrottleEvents", statistic="Sum", period=_FIVE_MINUTES
                    ),
                },
                label="DynamoDB throttle events",
                period=_FIVE_MINUTES,
            ),
            threshold=0,
            description="DynamoDB throttled reads or writes of the connections table "
            "(a hot partition: see README, Running at 100k connections).",
        )
        api_dimensions = {"ApiId": api_id, "Stage": stage_name}
        for metric_name in ("IntegrationError", "ExecutionError"):
            self._alarm(
                f"Api{metric_name}",
                self._api_metric(metric_name, api_dimensions, "Sum", _FIVE_MINUTES),
                threshold=0,
                description=f"API Gateway reported {metric_name} on the {stage_name} stage.",
            )

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"tabrelay-{stage_name}-{Stack.of(self).region}",
            default_interval=Duration.hours(3),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Connections and messages (API Gateway)",
                left=[
                    self._api_metric("ConnectCount", api_dimensions, "Sum", _MINUTE),
                    self._api_metric("MessageCount", api_dimensions, "Sum", _MINUTE),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Messages relayed, conflated, dropped, retried; posts to gone connections",
                left=[
                    self._custom("Relayed", "Sum", 60),
                    self._custom("Conflated", "Sum", 60),
                    self._custom("Dropped", "Sum", 60),
                    self._custom("DeliveryRetried", "Sum", 60),
                    self._custom("ThrottledSnapshotDropped", "Sum", 60),
                    self._custom("FanOutHandedOff", "Sum", 60),
                    self._custom("Gone", "Sum", 60),
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Delivery latency (ms)",
                left=[
                    self._custom("DeliveryLatencyMs", "p50", 60),
                    self._custom("DeliveryLatencyMs", "p99", 60),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Errors by code",
                left=[self._custom("Errors", "Sum", 300)],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Queues: visible messages and oldest age",
                left=[
                    relay.queue.metric_approximate_number_of_messages_visible(period=_MINUTE)
                    for relay in queues.values()
                ],
                right=[
                    relay.queue.metric_approximate_age_of_oldest_message(period=_MINUTE)
                    for relay in queues.values()
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues",
                left=[
                    relay.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=_MINUTE
                    )
                    for relay in queues.values()
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda errors and throttles",
                left=[f.metric_errors(period=_MINUTE) for f in functions.values()],
                right=[f.metric_throttles(period=_MINUTE) for f in functions.values()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="API Gateway errors and integration latency",
                left=[
                    self._api_metric(name, api_dimensions, "Sum", _MINUTE)
                    for name in ("ClientError", "IntegrationError", "ExecutionError")
                ],
                right=[self._api_metric("IntegrationLatency", api_dimensions, "p99", _MINUTE)],
                width=12,
            ),
        )

    @staticmethod
    def _api_metric(
        name: str, dimensions: Mapping[str, str], statistic: str, period: Duration
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name=name,
            dimensions_map=dict(dimensions),
            statistic=statistic,
            period=period,
        )

    @staticmethod
    def _custom(metric_name: str, statistic: str, period_seconds: int) -> cloudwatch.IMetric:
        return cloudwatch.MathExpression(
            expression=_search(metric_name, statistic, period_seconds),
            label=f"{metric_name} {statistic}",
            period=Duration.seconds(period_seconds),
            using_metrics={},
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        self.alarms.append(alarm)
