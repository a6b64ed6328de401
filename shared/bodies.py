"""Request bodies validated straight from their bytes: for large bodies (thousands of list entries) FastAPI's way,
the standard library's `json.loads` into Python objects and then a validation pass over them, costs several
times what pydantic's own JSON parser does in one pass (`model_validate_json`).

`json_body(Model)` is a dependency doing that, with FastAPI's answers kept: the same 422 problem document naming
each offending field (`lines.0.sku`; `body` for a body that is missing, not JSON or not declared JSON), and the
same OpenAPI document (`shared.openapi` declares the request body and the model's schemas as FastAPI would)."""

from __future__ import annotations

import email.message
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)

# The attribute that marks a `json_body` dependency, for the OpenAPI document: the model it validates.
BODY_MODEL_ATTRIBUTE = "json_body_model"


@functools.lru_cache(maxsize=64)
def _declared_json(content_type: str | None) -> bool:
    """`application/json` or `application/*+json`, as FastAPI decides whether a body is JSON (strict: a body
    without a content type is not). Remembered per content type: clients send the same few."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _in_body(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
    )


def json_body(model: type[Model]) -> Callable[[Request], Awaitable[Model]]:
    """A dependency: the request body as `model`, validated from the raw bytes in one pass."""

    async def body(request: Request) -> Model:
        raw = await request.body()
        if not raw:
            raise RequestValidationError(
                [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
            )
        try:
            if not _declared_json(request.headers.get("content-type")):
                # As FastAPI does: a body not declared JSON is validated as the bytes it is, and so refused.
                return model.model_validate(raw)
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise _in_body(exc) from None

    setattr(body, BODY_MODEL_ATTRIBUTE, model)
    return body


def body_model(call: Any) -> type[BaseModel] | None:
    """The model a `json_body` dependency validates; None for any other callable."""
    model = getattr(call, BODY_MODEL_ATTRIBUTE, None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None
