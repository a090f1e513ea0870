"""Request metrics of this API process, and the Prometheus text format they (and the platform gauges) are served in.

The middleware labels by route *template* (``/api/agents/{id}``), known once routing has run, so label
values stay bounded whatever ids clients send.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Seconds; the last bucket is +Inf.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"


@dataclass
class _Series:
    count: int = 0
    total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))


class HttpMetrics:
    """Counts and a latency histogram per (method, route template, status class), for one process."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str, str], _Series] = defaultdict(_Series)

    def record(self, method: str, route: str, status: int, elapsed: float) -> None:
        """Count one answered request."""
        series = self.series[(method, route, f"{status // 100}xx")]
        series.count += 1
        series.total += elapsed
        for i in range(bisect.bisect_left(BUCKETS, elapsed), len(BUCKETS)):
            series.buckets[i] += 1

    def exposition(self) -> list[str]:
        """``salesflow_http_requests_total`` and ``salesflow_http_request_duration_seconds`` lines."""
        lines = ["# HELP salesflow_http_requests_total HTTP requests answered by this API process.",
                 "# TYPE salesflow_http_requests_total counter"]
        for (method, route, status), series in sorted(self.series.items()):
            lines.append(f"salesflow_http_requests_total{_labels(method=method, route=route, status=status)} "
                         f"{series.count}")
        lines += ["# HELP salesflow_http_request_duration_seconds Time to answer, by route.",
                  "# TYPE salesflow_http_request_duration_seconds histogram"]
        for (method, route, status), series in sorted(self.series.items()):
            base = {"method": method, "route": route, "status": status}
            for bound, count in zip(BUCKETS, series.buckets, strict=True):
                lines.append(f"salesflow_http_request_duration_seconds_bucket{_labels(**base, le=str(bound))} {count}")
            lines.append(f"salesflow_http_request_duration_seconds_bucket{_labels(**base, le='+Inf')} {series.count}")
            lines.append(f"salesflow_http_request_duration_seconds_sum{_labels(**base)} {series.total:.6f}")
            lines.append(f"salesflow_http_request_duration_seconds_count{_labels(**base)} {series.count}")
        return lines


class RequestMetricsMiddleware:
    """ASGI middleware feeding :class:`HttpMetrics`; after routing the scope names the route template."""

    def __init__(self, app: Any, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.record(scope["method"], route, status, time.perf_counter() - started)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def gauges(name: str, help_text: str, values: Mapping[tuple[tuple[str, str], ...], float] | float) -> list[str]:
    """A gauge family: one value, or one per label set (``((label, value), ...)`` -> value)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    if isinstance(values, int | float):
        return [*lines, f"{name} {values:g}"]
    for labels, value in sorted(values.items()):
        lines.append(f"{name}{_labels(**dict(labels))} {value:g}")
    return lines


def render(blocks: Iterable[list[str]]) -> str:
    """The exposition document (text format 0.0.4)."""
    return "\n".join(line for block in blocks for line in block) + "\n"
