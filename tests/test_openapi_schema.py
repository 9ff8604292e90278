"""The OpenAPI schema matches the API (issue 13): pages, problem+json errors, the webhooks.
(tests/test_openapi_fuzz.py fuzzes the API against it when schemathesis is installed.)"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def spec() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.mark.parametrize("path", ["/api/v1/flows/", "/api/v1/exceptions/", "/api/v1/exceptions/groups/"])
def test_lists_are_described_as_the_pages_they_answer(spec, path, admin_client):
    schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["type"] == "object" and set(schema["properties"]) == {"count", "next", "previous", "results"}
    assert {"page", "page_size"} <= {p["name"] for p in spec["paths"][path]["get"]["parameters"]}
    assert set(admin_client.get(path).json()) == {"count", "next", "previous", "results"}  # what the API really answers


def test_every_operation_documents_its_errors_as_problem_json(spec):
    assert spec["components"]["schemas"]["Problem"]["required"] == ["title", "status"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"400", "429", "default"} <= set(responses), (method, path)
            for code, response in responses.items():
                if code.startswith(("4", "5")) or code == "default":
                    assert "application/problem+json" in response.get("content", {}), (method, path, code)
            if operation.get("security") != []:
                assert {"401", "403"} <= set(responses), (method, path)


def test_the_webhooks_are_in_the_schema(spec):
    stripe = spec["paths"]["/api/v1/webhooks/stripe/"]["post"]
    assert stripe["parameters"][0]["name"] == "Stripe-Signature" and stripe["security"] == []
    assert set(stripe["responses"]["200"]["content"]["application/json"]["schema"]["properties"]) == {"received", "accepted", "duplicates"}
    assert spec["paths"]["/api/v1/webhooks/salesforce/"]["post"]["parameters"][0]["name"] == "X-Q2C-Signature"


def test_an_unknown_api_url_is_a_problem_json_404(admin_client):
    response = admin_client.get("/api/v1/exceptions/not-a-number/")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/problem+json")
    assert response.json()["title"] == "Not Found"
    assert admin_client.get("/no-such-page/")["Content-Type"].startswith("text/html")  # pages keep their HTML 404
