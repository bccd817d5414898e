"""Request counters and latency histograms, rendered in the Prometheus text format."""

from __future__ import annotations

import bisect
import math
import threading
from collections import defaultdict

#: Upper bounds (seconds) of the latency histogram buckets (+Inf is implicit).
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class _Histogram:
    __slots__ = ("counts", "n", "total")

    def __init__(self):
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1


def _labels(**labels) -> str:
    # label values are the app's own endpoint templates and stage names, never request content
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _number(x: float) -> str:
    return "NaN" if math.isnan(x) else repr(float(x))


class Telemetry:
    """Thread-safe counters of requests (by endpoint and status) and latency histograms (by
    endpoint and by stage of the recommend path).

    Examples
    --------
    >>> t = Telemetry()
    >>> t.count_request("/health", 200, 0.001)
    >>> 'recforge_requests_total{endpoint="/health",status="200"} 1' in t.render()
    True
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._requests = defaultdict(int)  # (endpoint, status) -> count
        self._endpoint_latency = defaultdict(_Histogram)
        self._stage_latency = defaultdict(_Histogram)

    def count_request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(endpoint, int(status))] += 1
            self._endpoint_latency[endpoint].observe(seconds)

    def observe_stages(self, timings_ms: dict) -> None:
        with self._lock:
            for stage, ms in timings_ms.items():
                self._stage_latency[stage].observe(ms / 1e3)

    def render(self, feedback=None) -> str:
        """The Prometheus text exposition; ``feedback`` is a :class:`FeedbackStats` or None."""
        lines = [
            "# HELP recforge_requests_total HTTP requests by endpoint and status.",
            "# TYPE recforge_requests_total counter",
        ]
        with self._lock:
            requests = sorted(self._requests.items())
            hists = [
                (
                    "recforge_request_latency_seconds",
                    "endpoint",
                    sorted(self._endpoint_latency.items()),
                    "HTTP request latency by endpoint.",
                ),
                (
                    "recforge_stage_latency_seconds",
                    "stage",
                    sorted(self._stage_latency.items()),
                    "Latency of each stage of the recommend path.",
                ),
            ]
            lines += [
                f"recforge_requests_total{_labels(endpoint=e, status=s)} {n}"
                for (e, s), n in requests
            ]
            lines += [
                "# HELP recforge_errors_total HTTP requests answered with status >= 400.",
                "# TYPE recforge_errors_total counter",
            ]
            errors = defaultdict(int)
            for (e, s), n in requests:
                if s >= 400:
                    errors[e] += n
            lines += [
                f"recforge_errors_total{_labels(endpoint=e)} {n}" for e, n in sorted(errors.items())
            ]
            for name, label, items, help_text in hists:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
                for key, h in items:
                    cumulative = 0
                    for bound, count in zip((*LATENCY_BUCKETS, math.inf), h.counts):
                        cumulative += count
                        le = "+Inf" if math.isinf(bound) else repr(bound)
                        lines.append(
                            f"{name}_bucket{_labels(**{label: key, 'le': le})} {cumulative}"
                        )
                    lines.append(f"{name}_sum{_labels(**{label: key})} {_number(h.total)}")
                    lines.append(f"{name}_count{_labels(**{label: key})} {h.n}")
        if feedback is not None:
            lines += [
                "# HELP recforge_feedback_events_total Feedback events in the log by kind.",
                "# TYPE recforge_feedback_events_total counter",
                f'recforge_feedback_events_total{{event="impression"}} {feedback.impressions}',
                f'recforge_feedback_events_total{{event="click"}} {feedback.clicks}',
                "# HELP recforge_ctr Click-through rate of the feedback log (clicks/impressions).",
                "# TYPE recforge_ctr gauge",
                f"recforge_ctr {_number(feedback.ctr)}",
                "# HELP recforge_mean_click_position Average position of the clicked items.",
                "# TYPE recforge_mean_click_position gauge",
                f"recforge_mean_click_position {_number(feedback.mean_click_position)}",
            ]
        return "\n".join(lines) + "\n"
