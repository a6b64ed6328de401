"""Each service's `/docs` in a real browser: Swagger UI renders the service's OpenAPI 3.1 document offline, under
the page's own content security policy, with the Authorize button of its bearer scheme."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Stack, wait_in_page

SERVICES = ["promotion", "fulfillment", "returns", "planning"]


@pytest.mark.parametrize("service", SERVICES)
def test_swagger_ui_renders_every_operation_of_the_services_openapi_document(stack: Stack, browser: Any, service):
    spec = stack.client(service).get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    operations = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    refused: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(f"{stack.url(service)}/docs")
        wait_in_page(
            page,
            "() => document.querySelectorAll('.opblock').length",
            timeout=30,
            message=f"Swagger UI rendered no operation of the {service} service",
        )
        # An operation with several tags is shown under each of them.
        rendered = page.evaluate(
            """() => [...document.querySelectorAll('.opblock-summary')].map(s => [
                s.querySelector('.opblock-summary-method').textContent.trim(),
                s.querySelector('.opblock-summary-path').getAttribute('data-path')])"""
        )
        assert {tuple(pair) for pair in rendered} == operations, "every operation of the document is shown"
        assert page.locator("button.authorize").count() == 1, "the bearer scheme gives an Authorize button"
        assert "Unable to render this definition" not in page.content()
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the docs page: {errors}"
    assert not refused, f"the docs page needs something its content security policy refuses: {refused}"
