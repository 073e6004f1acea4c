"""Strict JSON request bodies for the control API: one small schema per endpoint.

A schema is a :class:`Body` subclass that declares its keys, their types and their bounds::

    class OverrideBody(Body):
        duration_s: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] = 600.0

:func:`read_body` returns the validated schema or raises an HTTP error whose JSON body names the
problem, so a handler applies nothing unless the whole body is right:

- 400 for a body that is not UTF-8, not JSON (``NaN`` and ``Infinity`` included), nested too
  deeply to parse, not an object, has a key twice, has a key the schema does not declare, or a
  value of the wrong type or out of range;
- 408 for a body that does not arrive within ``timeout_s`` (the connection is closed);
- 413 for a body larger than :data:`MAX_BODY_BYTES`.

An empty body stands for ``{}``: every key takes its declared default.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, NoReturn, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

MAX_BODY_BYTES = 128 * 1024
"""The largest body read (the application's ``client_max_size``); real bodies are tens of bytes."""
MAX_KEY_SHOWN_CHARS = 40

SchemaT = TypeVar("SchemaT", bound="Body")


class Body(BaseModel):
    """Base of every request body schema: frozen, and a key it does not declare is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def error_response(
    kind: type[web.HTTPClientError], message: str, **kwargs: Any
) -> web.HTTPClientError:
    """An HTTP error with ``{"error": message}`` as its JSON body, to raise from a handler."""
    return kind(text=json.dumps({"error": message}), content_type="application/json", **kwargs)


def _bad(message: str) -> NoReturn:
    raise error_response(web.HTTPBadRequest, message)


async def read_body(
    request: web.Request, schema: type[SchemaT], *, timeout_s: float, context: object = None
) -> SchemaT:
    """The request's body validated against ``schema``, or an HTTP error naming the problem;
    ``context`` reaches the schema's validators (bounds known only at run time)."""
    raw = await _read(request, timeout_s)
    try:
        data = _decode(raw)
    except _UnreadableError as exc:
        _bad(f"{exc} ({_takes(schema)})")
    try:
        return schema.model_validate(data, context=context)
    except ValidationError as exc:
        _bad("; ".join(_problem(error, schema) for error in exc.errors()))


async def _read(request: web.Request, timeout_s: float) -> bytes:
    if not request.can_read_body:
        return b""
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        error = error_response(web.HTTPRequestTimeout, f"body not received within {timeout_s:g} s")
        error.force_close()
        raise error from None
    except web.HTTPRequestEntityTooLarge:
        message = f"body larger than {MAX_BODY_BYTES} bytes"
        raise error_response(
            web.HTTPRequestEntityTooLarge, message, max_size=MAX_BODY_BYTES
        ) from None


class _UnreadableError(ValueError):
    """The body is not a JSON object; the message says why."""


def _decode(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _UnreadableError(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise _UnreadableError(f"body is not JSON: {exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise _UnreadableError("body is nested too deeply to read") from None
    except _DuplicateKeyError as exc:
        raise _UnreadableError(f"key {_shown(exc.key)} appears twice") from None
    except _ConstantError as exc:
        raise _UnreadableError(f"body is not JSON: {exc.constant} is not a JSON number") from None
    if not isinstance(data, dict):
        raise _UnreadableError(f"body must be a JSON object, not {_json_kind(data)}")
    return data


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _ConstantError(ValueError):
    def __init__(self, constant: str) -> None:
        super().__init__(constant)
        self.constant = constant


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKeyError(key)
        data[key] = value
    return data


def _no_constant(constant: str) -> NoReturn:
    raise _ConstantError(constant)


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _shown(key: str) -> str:
    """A key from the request, quoted and cut short: an error answer never echoes much input."""
    if len(key) > MAX_KEY_SHOWN_CHARS:
        key = key[:MAX_KEY_SHOWN_CHARS] + "..."
    return repr(key)


def _takes(schema: type[Body]) -> str:
    if not schema.model_fields:
        return "this endpoint takes no key: send {} or no body"
    return "this endpoint takes an object with: " + ", ".join(schema.model_fields)


def _problem(error: ErrorDetails, schema: type[Body]) -> str:
    path = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown key {_shown(path)} ({_takes(schema)})"
    return f"{path}: {error['msg']}" if path else error["msg"]
