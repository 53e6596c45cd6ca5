"""What the monitoring tests share: /metrics read and parsed, and log lines captured as JSON."""

import io
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.views import domain_collector
from pgi.observability.logs import PgiJsonFormatter, RequestIdFilter

METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.PGI_METRICS_TOKEN = METRICS_TOKEN
    settings.PGI_METRICS_CACHE_SECONDS = 0  # every scrape reads afresh
    domain_collector.clear()
    yield METRICS_TOKEN
    domain_collector.clear()


def scrape(client) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of GET /metrics with the token."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def sample(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class JsonLines:
    def __init__(self, stream: io.StringIO):
        self.stream = stream

    @property
    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def json_log():
    """Every log line of the test, as settings.LOGGING writes it with PGI_LOG_FORMAT=json.

    On the root logger, and on `celery` too: a Celery worker started in the test applies
    settings.LOGGING again (Django's setup in its thread), which replaces the root's handlers.
    A line may then be read twice; the tests compare sets."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PgiJsonFormatter())
    handler.addFilter(RequestIdFilter())
    loggers = [logging.getLogger(), logging.getLogger("celery")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield JsonLines(stream)
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
