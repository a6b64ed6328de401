"""`POST /v1/returns` is answered by a handler that runs the endpoint's checks itself (`CheckedRoute`): the
dependencies its signature declares must be exactly those the handler runs, or one added later would be skipped."""

from __future__ import annotations

from fastapi.routing import APIRoute

from services.returns_service import api


def test_the_return_route_declares_exactly_the_checks_its_handler_runs() -> None:
    [route] = [r for r in api.router.routes if isinstance(r, APIRoute) and r.endpoint is api.record_return]
    assert isinstance(route, api.CheckedRoute)
    assert route.methods == {"POST"}
    assert route.get_route_handler() is api._CHECKED[api.record_return]
    declared = route.dependant.dependencies
    assert [dependency.call for dependency in declared] == [api._may_write_returns, api._return_body]
    # Neither check depends on anything FastAPI would solve first.
    assert [dependency.dependencies for dependency in declared] == [[], []]
