"""The OpenAPI document passes two linters: openapi-spec-validator (the OpenAPI 3.0 schema) and Redocly
CLI's recommended rules (redocly.yaml), which .ci/run installs from the npm registry."""

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.test import Client
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
REDOCLY_VERSION = "2.77.0"  # as .ci/run installs it


@pytest.fixture(scope="module")
def document(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/v1/schema", {"format": "json"})
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def broken(document) -> dict:
    """The document with an operation that answers nothing and a reference to no component."""
    spoiled = copy.deepcopy(document)
    spoiled["paths"]["/v1/payments"]["post"]["responses"] = {}
    spoiled["paths"]["/v1/payments"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/Nowhere"
    }
    return spoiled


def test_the_document_is_valid_openapi(document):
    validate(document)

    with pytest.raises(OpenAPIValidationError):
        validate(broken(document))


def redocly_lint(document, tmp_path) -> dict:
    redocly = shutil.which("redocly")
    assert redocly, f"Redocly CLI is not installed: npm install -g @redocly/cli@{REDOCLY_VERSION} (as .ci/run does)"
    target = tmp_path / "schema.json"
    target.write_text(json.dumps(document))
    result = subprocess.run(
        [redocly, "lint", "--config", str(REPO / "redocly.yaml"), "--format", "json", str(target)],
        env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert report["version"] == REDOCLY_VERSION
    return report


def test_the_document_passes_redoclys_recommended_rules(document, tmp_path):
    report = redocly_lint(document, tmp_path)

    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, report["problems"]
    assert redocly_lint(broken(document), tmp_path)["totals"]["errors"] > 0
