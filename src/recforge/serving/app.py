"""The HTTP app (FastAPI): a thin layer over :class:`Recommender` and :class:`FeedbackStore`.

Endpoints: ``POST /recommend``, ``GET /similar-items/{item_id}?k=``, ``GET /health``,
``GET /metrics`` (Prometheus text), ``POST /feedback``, ``POST /admin/reload`` (token).
Bad request content is answered with a 4xx and a message, never a 500.

The two hot endpoints (``POST /recommend``, ``GET /similar-items``) are answered by the ASGI layer
in front of FastAPI (:func:`_hot_route`), on the event loop's thread: the same pydantic models and
caps, the same answers and status codes, without FastAPI's routing, dependency solving, response
encoding and thread-pool hop (~0.7 ms of CPU per request against ~0.05 ms; see docs/serving.md).
Their FastAPI routes stay declared, so the OpenAPI page documents them.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from typing import Annotated, Literal
from urllib.parse import parse_qsl

try:
    from fastapi import FastAPI, Header, HTTPException, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse
    from pydantic import (
        BaseModel,
        ConfigDict,
        Field,
        StrictBool,
        StringConstraints,
        TypeAdapter,
        ValidationError,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'recforge serve needs FastAPI and uvicorn: pip install "recforge[serve]"'
    ) from exc

from ..exceptions import ModelFileError
from .recommender import Recommender
from .store import FeedbackStore
from .telemetry import Telemetry

#: Largest ``k`` a request may ask for.
MAX_K = 1000
#: Longest ``recent_items`` / ``exclude`` list a request may send.
MAX_LIST_LENGTH = 1000
#: Largest request body (bytes).
MAX_BODY_BYTES = 64 * 1024
#: Longest string id.
MAX_ID_CHARS = 256

#: The endpoint labels of the metrics (request paths are mapped onto these, never used raw).
ENDPOINTS = ("/recommend", "/similar-items", "/health", "/metrics", "/feedback", "/admin/reload")

Id = (
    Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]
    | Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_ID_CHARS)]
)


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Id | None = None
    recent_items: list[Id] | None = Field(None, max_length=MAX_LIST_LENGTH)
    k: Annotated[int, Field(strict=True, ge=1, le=MAX_K)] = 10
    exclude: list[Id] | None = Field(None, max_length=MAX_LIST_LENGTH)
    explain: StrictBool = False
    context: dict | None = None  # accepted for the pipeline's context features; unused by recall


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Id
    item_id: Id
    event: Literal["impression", "click"]
    position: Annotated[int, Field(strict=True, ge=0, le=1_000_000)]
    timestamp: Annotated[float, Field(allow_inf_nan=False)] | None = None  # default: now


#: ``k`` of ``GET /similar-items`` (a query string value: "5" is 5, as FastAPI reads it).
_QUERY_K = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_K)])


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None


def _endpoint_of(path: str) -> str:
    if path.startswith("/similar-items/"):
        return "/similar-items"
    return path if path in ENDPOINTS else "other"


class _BodyLimitAndMetrics:
    """ASGI middleware: refuse bodies over ``MAX_BODY_BYTES`` with 413 (whatever Content-Length
    says), answer the hot endpoints (:func:`_hot_route`) and count every request with its status
    and latency."""

    def __init__(self, app, service: _Service, max_body: int):
        self.app, self.service, self.max_body = app, service, max_body
        self.telemetry = service.telemetry

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_counting(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            chunks, size, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    status["code"] = 499  # the client went away before sending its body
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    response = JSONResponse(
                        {"detail": f"request body over {self.max_body} bytes"}, status_code=413
                    )
                    return await response(scope, receive, send_counting)
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
            hot = _hot_route(self.service, scope, body)
            if hot is not None:
                status_code, answer = hot
                return await _send_json(send_counting, status_code, answer)
            sent = False

            async def replay():
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_counting)
        finally:
            self.telemetry.count_request(
                _endpoint_of(scope.get("path", "")), status["code"], time.perf_counter() - start
            )


def _json_bytes(answer) -> bytes:
    """``answer`` encoded as FastAPI's ``JSONResponse`` encodes it."""
    return json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def _send_json(send, status_code: int, answer) -> None:
    payload = _json_bytes(answer)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status_code, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _validation_errors(errors, where: tuple = ()) -> list:
    """A pydantic error list as the 422 answers show it (the offending input is not echoed back:
    it may be large or not JSON-encodable, such as inf)."""
    return [
        {
            "loc": [*where, *e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": e.get("type", ""),
        }
        for e in errors
    ]


def _hot_route(service: _Service, scope, body: bytes):
    """``(status, JSON-able answer)`` of ``POST /recommend`` and ``GET /similar-items/{id}``,
    validated by the same models and caps as their FastAPI routes; None for any other request
    (FastAPI answers it)."""
    method, path = scope.get("method"), scope.get("path", "")
    prefix = "/similar-items/"
    try:
        if method == "POST" and path == "/recommend":
            try:
                request = RecommendRequest.model_validate_json(body)
            except ValidationError as exc:
                return 422, {"detail": _validation_errors(exc.errors(), ("body",))}
            return 200, _recommend(service, request)
        if method == "GET" and path.startswith(prefix) and "/" not in path[len(prefix) :]:
            item_id = path[len(prefix) :]
            if not item_id:
                return None
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            try:
                k = _QUERY_K.validate_python(query.get("k", 10))
            except ValidationError as exc:
                return 422, {"detail": _validation_errors(exc.errors(), ("query", "k"))}
            return 200, _similar_items(service, item_id, k)
    except HTTPException as exc:
        return exc.status_code, {"detail": exc.detail}
    except REQUEST_ERRORS as exc:
        return _error_answer(exc)
    return None


#: what a request's content can raise in the model: answered 4xx by :func:`_error_answer`
REQUEST_ERRORS = (KeyError, ValueError, TypeError)


def _error_answer(exc: Exception) -> tuple[int, dict]:
    """``(status, JSON answer)`` of one of :data:`REQUEST_ERRORS`: 404 for an unknown id
    (``KeyError``), 400 for bad content."""
    if isinstance(exc, KeyError):
        return 404, {"detail": str(exc.args[0]) if exc.args else "unknown id"}
    return 400, {"detail": str(exc)}


def _recommend(service: _Service, body: RecommendRequest) -> dict:
    result = service.recommender.recommend_one(
        user_id=body.user_id,
        recent_items=body.recent_items,
        k=body.k,
        exclude=body.exclude,
        explain=True,
    )
    service.telemetry.observe_stages(result.timings_ms)
    answer = {"items": result.items, "scores": result.scores, "path": result.path}
    if body.explain:
        answer.update(sources=result.sources, timings_ms=result.timings_ms)
    return answer


def _similar_items(service: _Service, item_id: str, k: int) -> dict:
    rec = service.recommender
    query = item_id
    if rec.model.item_map_.kind in "iu":
        try:
            query = int(item_id)
        except ValueError:
            raise HTTPException(
                404, f"unknown item_id {item_id!r} (the model's item ids are integers)"
            ) from None
    items, scores = rec.similar_items(query, k)
    return {"item_id": query, "items": items, "scores": scores}


class _Service:
    """The mutable part of the app: the current recommender (swapped whole on reload)."""

    def __init__(self, recommender: Recommender, store: FeedbackStore, admin_token: str | None):
        self.recommender = recommender
        self.store = store
        self.admin_token = admin_token
        self.telemetry = Telemetry()
        self.reload_lock = threading.Lock()

    def check_admin(self, authorization: str | None) -> None:
        if not self.admin_token:
            raise HTTPException(
                403,
                "admin endpoints are disabled: start the server with "
                "--admin-token or RECFORGE_ADMIN_TOKEN",
            )
        if not authorization:
            raise HTTPException(
                401,
                "admin token required: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.admin_token.encode()
        ):
            raise HTTPException(403, "wrong admin token")


def create_app(model, *, feedback_db=":memory:", admin_token: str | None = None) -> FastAPI:
    """The FastAPI app serving ``model``.

    Parameters
    ----------
    model : Recommender, or the path of a saved model (loaded with :meth:`Recommender.load`)
    feedback_db : path of the SQLite feedback log (default in memory: not durable)
    admin_token : str, optional
        Token of ``POST /admin/reload``; without one the admin endpoints answer 403.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from recforge.recall import Popularity
    >>> rec = Recommender(Popularity().fit(sp.csr_matrix([[1.0, 1.0], [0.0, 1.0]])))
    >>> app = create_app(rec)   # then: uvicorn.run(app, host="127.0.0.1", port=8000)
    >>> sorted(r.path for r in app.routes if not r.path.startswith(("/docs", "/openapi", "/redoc")))
    ['/admin/reload', '/feedback', '/health', '/metrics', '/recommend', '/similar-items/{item_id}']
    """
    recommender = model if isinstance(model, Recommender) else Recommender.load(model)
    service = _Service(recommender, FeedbackStore(feedback_db), admin_token)
    app = FastAPI(title="recforge", description="recforge recommendations over HTTP")
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _validation_errors(exc.errors())}, status_code=422)

    async def _request_error(request: Request, exc: Exception):
        status_code, answer = _error_answer(exc)
        return JSONResponse(answer, status_code=status_code)

    for error in REQUEST_ERRORS:
        app.add_exception_handler(error, _request_error)

    # the hot endpoints: the middleware answers them (_hot_route); declared for the OpenAPI page
    @app.post("/recommend")
    def recommend(body: RecommendRequest):
        return _recommend(service, body)

    @app.get("/similar-items/{item_id}")
    def similar_items(item_id: str, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10):
        return _similar_items(service, item_id, k)

    @app.get("/health")
    def health():
        rec = service.recommender
        return {
            "status": "ok",
            "model": type(rec.model).__name__,
            "file": None if rec.file is None else str(rec.file),
            "n_users": rec.n_users,
            "n_items": rec.n_items,
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics():
        return service.telemetry.render(service.store.stats())

    @app.post("/feedback")
    def feedback(body: FeedbackRequest):
        timestamp = time.time() if body.timestamp is None else body.timestamp
        event_id = service.store.add(
            user_id=body.user_id,
            item_id=body.item_id,
            event=body.event,
            position=body.position,
            timestamp=timestamp,
        )
        return {"id": event_id}

    @app.post("/admin/reload")
    def reload(
        body: ReloadRequest | None = None, authorization: Annotated[str | None, Header()] = None
    ):
        service.check_admin(authorization)
        with service.reload_lock:
            path = body.path if body is not None and body.path else service.recommender.file
            if path is None:
                raise HTTPException(400, 'no model path: send {"path": ...}')
            try:
                fresh = Recommender.load(path, index=service.recommender.index)
            except (
                ModelFileError,
                FileNotFoundError,
                IsADirectoryError,
                PermissionError,
                ValueError,  # index="ann" and a model without an embedding source
            ) as exc:
                raise HTTPException(
                    422, f"model not reloaded, still serving the previous one: {exc}"
                ) from exc
            service.recommender = fresh  # one reference swap: in-flight requests keep the old model
        return {
            "status": "reloaded",
            "model": type(fresh.model).__name__,
            "file": str(path),
            "n_users": fresh.n_users,
            "n_items": fresh.n_items,
        }

    app.add_middleware(_BodyLimitAndMetrics, service=service, max_body=MAX_BODY_BYTES)
    return app
