"""The OpenAPI document: served, complete, and in step with docs/openapi.yaml.

After changing the API, rewrite the file with
``OTP_AUTH_WRITE_OPENAPI=1 python -m pytest tests/api/test_schema.py -p no:xdist``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("rest_framework")
yaml = pytest.importorskip("yaml")

from drf_spectacular.drainage import GENERATOR_STATS  # noqa: E402

from otp_auth.api.schema import generate_schema, render_yaml  # noqa: E402

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


@pytest.fixture(scope="module")
def schema():
    GENERATOR_STATS.reset()
    generated = generate_schema()
    assert not GENERATOR_STATS, "drf-spectacular warned while generating the schema"
    return generated


def test_the_schema_file_is_in_step_with_the_code(schema):
    rendered = render_yaml(schema)
    if os.environ.get("OTP_AUTH_WRITE_OPENAPI"):
        SCHEMA_FILE.write_bytes(rendered)
    assert SCHEMA_FILE.read_bytes() == rendered, (
        "docs/openapi.yaml is stale: rerun this test with OTP_AUTH_WRITE_OPENAPI=1"
    )


def test_every_operation_documents_its_answers(schema):
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) == 33
    for path, method, operation in operations:
        responses = operation["responses"]
        assert operation.get("summary") and operation.get("description"), (path, method)
        assert all(r.get("description") for r in responses.values()), (path, method)
        success = [code for code in responses if code.startswith("2")]
        assert success, (path, method)
        if method == "post":
            assert "400" in responses and "403" in responses, (path, method)
        errors = [r for code, r in responses.items() if code[0] in "45"]
        for response in errors:
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error", (path, method)
        if "429" in responses:
            assert "Retry-After" in responses["429"]["headers"]


@pytest.mark.django_db
def test_the_schema_is_served_with_the_mounted_paths(client, schema):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    served = yaml.safe_load(response.content)
    assert served["paths"].keys() == schema["paths"].keys()
    as_json = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert as_json.json()["info"]["title"] == "otp_auth API"
