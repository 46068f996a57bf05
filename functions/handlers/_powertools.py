"""Powertools singletons every handler shares: structured logs and EMF metrics.

No Tracer: the X-Ray SDK it imports costs more at cold start than the rest of
a handler. Lambda's active tracing (set by the stack) records each invocation
without it (docs/architecture.md, "Tracing").
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

__all__ = ["logger", "metrics"]

logger = Logger()
metrics = Metrics()
