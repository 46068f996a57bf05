"""The :class:`~functions.logic.ports.Counters` port on Powertools Metrics (EMF)."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

__all__ = ["PowertoolsCounters"]


class PowertoolsCounters:
    """Implements :class:`~functions.logic.ports.Counters` with Powertools Metrics (EMF)."""

    def __init__(self, sink: Metrics) -> None:
        self._metrics = sink

    def count(
        self, name: str, value: int = 1, *, code: str | None = None, kind: str | None = None
    ) -> None:
        if code is None and kind is None:
            self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
            return
        with single_metric(
            name=name, unit=MetricUnit.Count, value=value, namespace=self._metrics.namespace
        ) as metric:
            if code is not None:
                metric.add_dimension(name="code", value=code)
            if kind is not None:
                metric.add_dimension(name="kind", value=kind)

    def observe_ms(self, name: str, milliseconds: float) -> None:
        self._metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=milliseconds)
