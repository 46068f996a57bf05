"""The SQS bus and delivery queues, each with its dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge

__all__ = ["VISIBILITY_FACTOR", "RelayQueue"]

# AWS guidance: visibility timeout at least 6x the consuming function's timeout, so a
# message is not handed out again while Lambda still retries a throttled batch.
VISIBILITY_FACTOR = 6


class RelayQueue(Construct):
    """A standard queue with SSE, SSL-only access and a redrive to its own DLQ.

    ``consumer_timeout`` is the timeout of the function that consumes the queue.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        consumer_timeout: Duration,
        max_receive_count: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letter_queue,
            "Serverless-SQSRedrivePolicy",
            "This is the dead-letter queue itself: a DLQ of a DLQ would only move the "
            "problem. Its depth alarm calls an operator, who redrives it after a fix.",
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(consumer_timeout.to_seconds() * VISIBILITY_FACTOR),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=max_receive_count
            ),
        )
