"""deploy/prometheus-rules.yaml names only metrics that /metrics exposes, and says what each alert means."""

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from .conftest import METRICS_TOKEN

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus-rules.yaml"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "04-operations.md"


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def exposed_names(client) -> set[str]:
    client.get("/healthz")  # one request, so that the request metrics have samples
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").content.decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        names.update(sample.name for sample in family.samples)
    return names


@pytest.mark.django_db
def test_every_metric_an_alert_names_is_exposed(client):
    exposed = exposed_names(client)

    named = {name for rule in alert_rules() for name in re.findall(r"\bpgi_[a-z_]+", rule["expr"])}

    assert named and named <= exposed, named - exposed


def test_every_alert_has_a_severity_a_summary_a_meaning_and_a_row_in_the_operations_guide():
    docs = DOCS.read_text()
    rules = alert_rules()

    assert len(rules) >= 10
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "warn", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert f"| `{rule['alert']}` |" in docs, rule["alert"]
