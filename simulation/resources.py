"""The stack's stateful resources in moto: the table, the work queues, the signing secret.

Call inside ``mock_aws()``; the names and keys are the ones the stack gives them
(through :data:`simulation.environment.ENVIRONMENT`).
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from simulation.environment import ENVIRONMENT, REGION, SIGNING_KEY

__all__ = ["WORK_QUEUES", "create_resources", "create_table"]

#: The SQS queues the handlers send to and the workers read, by queue name.
WORK_QUEUES = ("tabrelay-bus", "tabrelay-commands", "tabrelay-delivery")


def create_table(dynamodb: Any, table_name: str) -> None:
    """The connection table: its keys, on-demand billing, TTL on ``ttl`` (as the stack)."""
    dynamodb.create_table(
        TableName=table_name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
    )


def _create_queues(max_receive_count: int | None) -> dict[str, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    dead_letters: dict[str, str] = {}
    for name in WORK_QUEUES:
        if max_receive_count is None:
            sqs.create_queue(QueueName=name)
            continue
        dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        policy = {"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive_count)}
        sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(policy)})
        dead_letters[name] = dlq
    return dead_letters


def create_resources(*, max_receive_count: int | None = None) -> dict[str, str]:
    """Create the table (with its TTL), the work queues and the signing secret.

    With ``max_receive_count`` each work queue gets a dead-letter queue and the
    redrive policy the stack sets, so a record that keeps failing lands there.
    Returns the dead-letter queues' URLs by work queue name (none without).
    """
    create_table(boto3.client("dynamodb", region_name=REGION), ENVIRONMENT["TABLE_NAME"])
    dead_letters = _create_queues(max_receive_count)
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=ENVIRONMENT["SIGNING_SECRET_ID"], SecretString=SIGNING_KEY
    )
    return dead_letters
