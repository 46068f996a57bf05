"""The Lambda environment the moto tests run the handlers with.

Imported before anything that builds Powertools or boto3 objects, which read
the environment when they are created.
"""

from __future__ import annotations

import os

from tests.integration.constants import ACCOUNT, API_ID, REGION, STAGE

ENVIRONMENT = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "TABLE_NAME": "tabrelay-connections",
    "BUS_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/tabrelay-bus",
    "DELIVERY_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/tabrelay-delivery",
    "CALLBACK_URL": f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/{STAGE}",
    "SIGNING_SECRET_ID": "tabrelay-signing-key",
    "MAX_UNACKED": "100",
    "RATE_LIMIT_PER_SECOND": "100000",
    "POWERTOOLS_SERVICE_NAME": "tabrelay",
    "POWERTOOLS_METRICS_NAMESPACE": "TabRelay",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
os.environ.update(ENVIRONMENT)
os.environ.pop("AWS_ENDPOINT_URL", None)
