"""`POST /v1/returns` and `POST /v1/complaints` are answered by handlers that run the endpoint's checks themselves
(`CheckedRoute`): the checks an endpoint's signature declares must be exactly those its handler runs, or one added
later would be skipped."""

from __future__ import annotations

from fastapi.routing import APIRoute

from services.returns_service import api
from services.returns_service.schemas import ComplaintCreate
from shared.bodies import body_model


def checked_route(endpoint: object) -> APIRoute:
    [route] = [r for r in api.router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint]
    assert isinstance(route, api.CheckedRoute)
    assert route.methods == {"POST"}
    assert route.get_route_handler() is api._CHECKED[route.endpoint]
    return route


def test_the_return_route_declares_exactly_the_checks_its_handler_runs() -> None:
    route = checked_route(api.record_return)
    declared = route.dependant.dependencies
    assert [dependency.call for dependency in declared] == [api._may_write_returns, api._return_body]
    # Neither check depends on anything FastAPI would solve first.
    assert [dependency.dependencies for dependency in declared] == [[], []]


def test_the_complaint_route_declares_exactly_the_checks_its_handler_runs() -> None:
    route = checked_route(api.record_complaint)
    declared = route.dependant.dependencies
    assert [dependency.call for dependency in declared] == [api._may_write_returns]
    assert declared[0].dependencies == []
    # The body is a parameter of the endpoint (the OpenAPI document's schema of it): the handler validates the
    # same model from the same bytes.
    assert [field.field_info.annotation for field in route.dependant.body_params] == [ComplaintCreate]
    assert body_model(api._complaint_body) is ComplaintCreate
    assert route.dependant.query_params == [] and route.dependant.header_params == []
    assert route.dependant.path_params == [] and route.dependant.cookie_params == []
