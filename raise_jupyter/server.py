"""The HTTP feature server behind ``raise serve``: online lookups over JSON.

Endpoints: ``POST /v1/online-features``, ``GET /health`` and ``GET /openapi.json``. Every endpoint
but ``/health`` needs ``Authorization: Bearer <token>`` (see ``raise token create``). A missing,
unknown or revoked token gets 401, and a user without the viewer role on the namespace gets 403.
Other bad requests get a 4xx response whose ``error`` field explains the problem. An unexpected
error is logged and gets a 500 response, and the server keeps running.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from raise_jupyter import access, tokens
from raise_jupyter.errors import DefinitionError, NotFoundError, PermissionDenied, RaiseError
from raise_jupyter.store import FeatureStore

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Raise feature server", "version": "1"},
    "paths": {
        "/v1/online-features": {
            "post": {
                "summary": "Latest feature values of the given entities, in request order",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["features", "entities"],
                                "properties": {
                                    "features": {
                                        "type": "array",
                                        "items": {"type": "string"},
                                        "example": ["user-signals.ctr"],
                                    },
                                    "entities": {
                                        "type": "object",
                                        "additionalProperties": {"type": "array"},
                                        "example": {"user_id": [1, 2]},
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "One object per requested entity, with a status of found, missing or expired",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"results": {"type": "array", "items": {"type": "object"}}},
                                }
                            }
                        },
                    },
                    "400": {"description": "Invalid request; the error field says what to fix"},
                    "401": {"description": "Missing, unknown or revoked bearer token"},
                    "403": {"description": "The token's user lacks the viewer role on the namespace"},
                    "404": {"description": "Unknown feature group or feature"},
                },
                "security": [{"bearer": []}],
            }
        },
        "/health": {"get": {"summary": "Liveness check, without a token", "responses": {"200": {"description": "Server is up"}}}},
    },
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
}


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Request) -> bytes:
    """Read the body, stopping as soon as it exceeds the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise DefinitionError(f"The request body has {int(declared):,} bytes; the maximum is {MAX_BODY_BYTES:,}.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise DefinitionError(f"The request body exceeds the maximum of {MAX_BODY_BYTES:,} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_request(body: bytes) -> tuple[list[str], dict[str, list[Any]]]:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as error:
        raise DefinitionError(f"The request body is not valid JSON: {type(error).__name__}: {error}.") from None

    if not isinstance(payload, dict):
        raise DefinitionError('The request body must be a JSON object with "features" and "entities".')
    features = payload.get("features")
    entities = payload.get("entities")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features) or not features:
        raise DefinitionError('"features" must be a non-empty list of "group.feature" strings.')
    if not isinstance(entities, dict) or not entities or not all(isinstance(v, list) for v in entities.values()):
        raise DefinitionError('"entities" must be an object of key name to a list of values, such as {"user_id": [1, 2]}.')
    return features, entities


def _unauthorized(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def create_app(store: FeatureStore) -> Starlette:
    """Return the ASGI application serving online lookups of ``store``'s namespace.

    Each request acts as the user of its bearer token, in a store object of that user.
    """
    namespace = store.namespace
    stores: dict[str, FeatureStore] = {}

    def authorize(header: str) -> FeatureStore | Response:
        """Return the store of the token's user, or the 401 or 403 response (runs in a thread)."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            logger.info("Rejected a request without a bearer token (401)")
            return _unauthorized('Missing bearer token: send "Authorization: Bearer <token>"; create one with "raise token create USER".')
        user = tokens.user_of_token(store._catalog, token.strip())
        if user is None:
            logger.info("Rejected a request with an unknown or revoked token (401)")
            return _unauthorized('The bearer token is unknown or revoked; create a new one with "raise token create USER".')
        user_store = stores.get(user)
        if user_store is None:
            user_store = stores[user] = FeatureStore(namespace, root=store.root, user=user)
        try:
            access.check(user_store._actor, access.READ, path=namespace, kind="namespace", name=namespace)
        except PermissionDenied as error:
            logger.info("Denied user %s access to %s (403)", user, namespace)
            return _error(403, str(error))
        return user_store

    async def authorized(request: Request) -> FeatureStore | Response:
        return await run_in_threadpool(authorize, request.headers.get("authorization", ""))

    async def online_features(request: Request) -> Response:
        user_store = await authorized(request)
        if isinstance(user_store, Response):
            return user_store
        try:
            features, entities = _parse_request(await _read_body(request))
            # The lookup runs in a worker thread so that one large request does not hold up others.
            result = await run_in_threadpool(user_store.get_online_features, features, entities)
        except PermissionDenied as error:
            logger.info("Denied user %s a lookup in %s (403)", user_store.user, namespace)
            return _error(403, str(error))
        except NotFoundError as error:
            return _error(404, str(error))
        except RaiseError as error:
            return _error(400, str(error))
        except (OverflowError, RecursionError, ValueError) as error:
            return _error(400, f"Invalid request values: {type(error).__name__}: {error}")
        except Exception as error:  # noqa: BLE001 - the server must answer and keep running
            logger.exception("Online lookup failed for features %r", locals().get("features"))
            return _error(500, f"Internal error: {type(error).__name__}: {error}")

        rows = result.to_arrow().to_pylist()
        return JSONResponse({"results": [{k: _json_value(v) for k, v in row.items()} for row in rows]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "namespace": store.namespace})

    async def openapi(request: Request) -> Response:
        user_store = await authorized(request)
        if isinstance(user_store, Response):
            return user_store
        return JSONResponse(OPENAPI)

    routes = [
        Route("/v1/online-features", online_features, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def serve(namespace: str, *, root: Path | None, host: str, port: int) -> None:
    """Run the feature server until interrupted."""
    import uvicorn

    store = FeatureStore(namespace, root=root)
    logger.info("Serving %s from %s on http://%s:%d", namespace, store.root, host, port)
    uvicorn.run(create_app(store), host=host, port=port, log_level="warning")
