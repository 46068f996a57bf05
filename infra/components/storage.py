"""The connections table: one DynamoDB table keyed ``pk``/``sk`` (docs/architecture.md)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

__all__ = ["TABLE_DATA_ACTIONS", "ConnectionTable"]

# Every access path is a key lookup (GetItem/Query on one partition): no Scan is granted,
# so a handler that starts scanning fails loudly instead of growing with the table.
TABLE_DATA_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)


class ConnectionTable(Construct):
    """On-demand, TTL on ``ttl``, point-in-time recovery; kept on destroy when ``retain``.

    No GSI: every lookup of the data model is a key lookup.
    """

    def __init__(self, scope: Construct, construct_id: str, *, retain: bool) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="ttl",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=retain,
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        )

    def grant_data(self, grantee: iam.IGrantable) -> None:
        """Item reads and writes on this table only (no Scan, no table management)."""
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(TABLE_DATA_ACTIONS), resource_arns=[self.table.table_arn]
        )
