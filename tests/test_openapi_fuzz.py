"""A short schemathesis run against the OpenAPI schema (issue 13): no 5xx, and no answer that
contradicts the schema (status code, content type, body). A longer run: README, "API fuzzing".

Each API operation gets a few generated requests (Q2C_FUZZ_EXAMPLES, default 5) as a superuser
with a token, in the test's transaction (pytest-django), through the WSGI app in-process."""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")

from django.core import signals  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from drf_spectacular.generators import SchemaGenerator  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance  # noqa: E402

EXAMPLES = int(os.environ.get("Q2C_FUZZ_EXAMPLES", "5"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = get_wsgi_application()


@pytest.fixture
def token(db, django_user_model):
    # the requests run inside the test's transaction: like Django's test client, keep the
    # connection open across them (a real server closes it per request)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    admin = django_user_model.objects.create_superuser("fuzz-admin", "fuzz@example.invalid", "x")
    yield Token.objects.create(user=admin).key
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_the_api_answers_as_its_schema_says(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
