"""Errors as RFC 9457 problem documents (`application/problem+json`) that name the offending field."""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db import is_transient

PROBLEM_JSON = "application/problem+json"

log = structlog.get_logger("salesops.errors")


class ProblemFieldError(BaseModel):
    """One offending field of a request."""

    model_config = ConfigDict(extra="allow")

    field: str = Field(
        description="a dotted path into the body (`items.0.sku`), or `query.<name>`, `path.<name>`, "
        "`header.<name>`; `body` for a body that is not JSON"
    )
    message: str = Field(description="why the value is refused")
    type: str | None = Field(default=None, description="a machine-readable kind of error, e.g. `missing`")


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`), the body of every error answer."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="a URI reference naming the kind of problem")
    title: str = Field(description="the status code's reason phrase, e.g. `Unprocessable Entity`")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="what went wrong, for a person; names the offending field")
    instance: str | None = Field(default=None, description="the request path")
    errors: list[ProblemFieldError] | None = Field(default=None, description="every offending field (422)")


class ProblemError(Exception):
    """Raise from anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extra = extra


def not_found(what: str, ident: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"no {what} with id '{ident}'")


def conflict(detail: str, **extra: Any) -> ProblemError:
    return ProblemError(409, "Conflict", detail, **extra)


def invalid(field: str, message: str) -> ProblemError:
    """A 422 for a rule the request schema cannot express (e.g. a date ordering)."""
    return ProblemError(
        422, "Unprocessable Entity", f"{field}: {message}", errors=[{"field": field, "message": message}]
    )


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        where, rest = parts[0], parts[1:]
        return ".".join(rest) if where == "body" and rest else ".".join([where, *rest]) if rest else where
    return ".".join(parts)


def validation_errors(raw: list[Any]) -> list[dict[str, Any]]:
    errors = []
    for err in raw:
        field = _field_path(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            field = "body"
        errors.append({"field": field, "message": err.get("msg", "invalid"), "type": err.get("type")})
    return errors


def service_unavailable(request: Request, exc: BaseException) -> JSONResponse:
    """503 with Retry-After: the database or the network is down, the request may be retried as it is."""
    log.warning("dependency unavailable", error=repr(exc))
    return problem_response(
        503,
        "Service Unavailable",
        "a dependency is unavailable; retry shortly",
        headers={"Retry-After": "2"},
        instance=request.url.path,
    )


def _is_unstorable_value(exc: Exception) -> bool:
    """PostgreSQL data exceptions (SQLSTATE class 22): a value the request carried that no column can hold; raised
    through SQLAlchemy or by the driver itself (statements run on its connection)."""
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None)
    elif isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
    else:
        return False
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


def _field_with_nul(request: Request) -> str:
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            return f"query.{name}"
    for name, value in request.path_params.items():
        if "\x00" in str(value):
            return f"path.{name}"
    return "body"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            errors=exc.errors,
            headers=exc.headers,
            instance=request.url.path,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(list(exc.errors()))
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(
            422,
            "Unprocessable Entity",
            summary or "invalid request",
            errors=errors,
            instance=request.url.path,
        )

    # Database and network failures are answered here, inside the app, rather than by a catch-all handler,
    # which Starlette runs only after logging the exception as a crash.
    @app.exception_handler(DBAPIError)
    @app.exception_handler(asyncpg.PostgresError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    @app.exception_handler(OSError)
    @app.exception_handler(TimeoutError)
    async def _dependency(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):
            return service_unavailable(request, exc)
        if _is_unstorable_value(exc):
            field = _field_with_nul(request)
            message = "contains a character or value the database cannot store (e.g. a NUL character)"
            return problem_response(
                422,
                "Unprocessable Entity",
                f"{field}: {message}",
                errors=[{"field": field, "message": message, "type": "value_error"}],
                instance=request.url.path,
            )
        log.error("database error", error=repr(exc), exc_info=exc)
        return problem_response(500, "Internal Server Error", "an unexpected error occurred", instance=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large"}.get(exc.status_code, "Error")
        return problem_response(
            exc.status_code,
            title,
            str(exc.detail),
            headers=getattr(exc, "headers", None),
            instance=request.url.path,
        )
