"""TF Serving's REST API over a :class:`~tasks.serving.models.ModelManager`, so existing clients
work unchanged, plus ``:classify-image`` for people and curl.

    GET  /v1/models/NAME[/versions/V]                  version status
    GET  /v1/models/NAME[/versions/V]/metadata         signatures, plus the class names
    POST /v1/models/NAME[/versions/V]:predict          {"instances": [{"b64": ...}]} -> {"predictions": ...}
                                                       {"inputs": ...}               -> {"outputs": ...}
    POST /v1/models/NAME[/versions/V]:classify-image   an image (raw body or multipart) -> classes, probabilities

Errors answer ``{"error": "..."}`` (TF Serving's shape) with 400 for bad input, 404 for an
unknown model or version, 413 for a body over the size cap. Every answer computed by a model
names its version in the ``X-Model-Version`` header.
"""
from __future__ import annotations

import base64
import binascii
import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tasks import tfrecords
from tasks.errors import HotdogInputError
from tasks.serving.models import ModelManager, NotServed, Servable

VERSION_HEADER = "X-Model-Version"
DRAIN_FACTOR = 4


class TooLarge(Exception):
    """A request body over the size cap (HTTP 413)."""


def create_app(manager: ModelManager, max_bytes: int) -> FastAPI:
    app = FastAPI(title="hotdog-flows model server", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HotdogInputError)
    async def bad_input(_request, err):
        return JSONResponse({"error": str(err)}, status_code=400)

    @app.exception_handler(NotServed)
    async def not_served(_request, err):
        return JSONResponse({"error": str(err)}, status_code=404)

    @app.exception_handler(TooLarge)
    async def too_large(_request, err):
        return JSONResponse({"error": str(err)}, status_code=413)

    def known(name: str) -> None:
        if name != manager.name:
            raise NotServed(f"no model named {name!r} (this server serves {manager.name!r})")

    @app.get("/v1/models/{name}")
    @app.get("/v1/models/{name}/versions/{version}")
    async def status(name: str, version: str | None = None):
        known(name)
        statuses = {v: s for v, s in manager.status.items() if version in (None, v)}
        if version is not None and not statuses:
            raise NotServed(f"version {version} of model {name!r} is not known to this server")
        return {"model_version_status": [
            {"version": v, "state": s["state"],
             "status": {"error_code": "UNKNOWN" if s["error"] else "OK", "error_message": s["error"]}}
            for v, s in sorted(statuses.items(), key=lambda item: int(item[0]), reverse=True)]}

    @app.get("/v1/models/{name}/metadata")
    @app.get("/v1/models/{name}/versions/{version}/metadata")
    async def metadata(name: str, version: str | None = None):
        known(name)
        servable = manager.servable(version)
        return JSONResponse({"model_spec": {"name": name, "signature_name": "", "version": servable.version},
                             "metadata": {"signature_def": {"signature_def": servable.signatures},
                                          "class_names": servable.classes}},
                            headers={VERSION_HEADER: servable.version})

    async def answer(examples: list[bytes], version: str | None, render) -> JSONResponse:
        rows, servable = await manager.predict(examples, version)
        return JSONResponse(render(rows, servable), headers={VERSION_HEADER: servable.version})

    @app.post("/v1/models/{name}:predict")
    @app.post("/v1/models/{name}/versions/{version}:predict")
    async def predict(name: str, request: Request, version: str | None = None):
        known(name)
        signature, examples, columnar = parse_predict(await read_body(request, max_bytes))
        return await answer(examples, version, lambda rows, servable: format_predictions(
            signature, rows, servable, columnar))

    @app.post("/v1/models/{name}:classify-image")
    @app.post("/v1/models/{name}/versions/{version}:classify-image")
    async def classify_image(name: str, request: Request, version: str | None = None):
        known(name)
        image = await image_of_request(request, max_bytes)
        return await answer([tfrecords.image_example(image)], version, lambda rows, servable: {
            "model": name, **classification(rows[0], servable)})

    return app


def classification(row, servable: Servable) -> dict:
    """One softmax row as the version, the top class and every class's probability."""
    probabilities = {c: float(p) for c, p in zip(servable.classes, row)}
    return {"model_version": servable.version, "top": max(probabilities, key=probabilities.get),
            "classes": servable.classes, "probabilities": probabilities}


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body; TooLarge once it passes ``max_bytes``. An oversized body is still read
    (and dropped) up to ``DRAIN_FACTOR`` times the limit, so the client is not cut off mid-send
    and reads the 413; a body declared larger than that is refused unread."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes * DRAIN_FACTOR:
        raise TooLarge(f"the request body is {int(declared)} bytes; the limit is {max_bytes} (--max-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= max_bytes:
            chunks.append(chunk)
        elif size > max_bytes * DRAIN_FACTOR:
            break
    if size > max_bytes:
        raise TooLarge(f"the request body is {'over ' if size > max_bytes * DRAIN_FACTOR else ''}{size} bytes; the "
                       f"limit is {max_bytes} (--max-bytes)")
    return b"".join(chunks)


def _string(value, where: str) -> bytes:
    """A DT_STRING value of TF Serving's JSON: {"b64": ...} or a plain string."""
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise HotdogInputError(f"{where}: 'b64' is not valid base64") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise HotdogInputError(f"{where}: expected {{\"b64\": \"<base64 of a serialized tf.Example>\"}}, got "
                           f"{json.dumps(value)[:60]}")


def parse_predict(body: bytes) -> tuple[str, list[bytes], bool]:
    """A TF Serving predict request: (signature name, serialized examples, columnar?)."""
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HotdogInputError(f"the request body is not valid JSON: {err}") from None
    if not isinstance(request, dict):
        raise HotdogInputError("the request must be a JSON object with 'instances' or 'inputs'")
    signature = request.get("signature_name", "serving_default")
    if signature not in ("serving_default", "classify"):
        raise HotdogInputError(f"Serving signature name: \"{signature}\" not found in signature def "
                               f"(signatures: serving_default, classify)")
    if ("instances" in request) == ("inputs" in request):
        raise HotdogInputError("Missing 'inputs' or 'instances' key (give exactly one)")
    columnar = "inputs" in request
    values = request["inputs"] if columnar else request["instances"]
    if isinstance(values, dict) and columnar:
        if set(values) != {"examples"}:
            raise HotdogInputError(f"unknown input(s) {sorted(set(values) - {'examples'})}: the only input is "
                                   f"'examples'")
        values = values["examples"]
    if not isinstance(values, list) or not values:
        raise HotdogInputError(f"'{'inputs' if columnar else 'instances'}' must be a non-empty list")
    examples = []
    for i, value in enumerate(values):
        if isinstance(value, dict) and set(value) == {"examples"}:
            value = value["examples"]
        examples.append(_string(value, f"instance {i}"))
    return signature, examples, columnar


def format_predictions(signature: str, rows, servable: Servable, columnar: bool) -> dict:
    """Rows of softmax as TF Serving answers for ``signature``: one output ('outputs') gives
    plain rows; classify's two outputs give an object per row (columns when ``columnar``)."""
    scores = [[float(p) for p in row] for row in rows]
    if signature == "serving_default":
        return {"outputs": scores} if columnar else {"predictions": scores}
    if columnar:
        return {"outputs": {"classes": [servable.classes for _ in scores], "scores": scores}}
    return {"predictions": [{"classes": servable.classes, "scores": row} for row in scores]}


async def image_of_request(request: Request, max_bytes: int) -> bytes:
    """The image of a :classify-image request: the raw body, or the one file of a multipart form."""
    body = await read_body(request, max_bytes)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        from starlette.datastructures import UploadFile
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def chunks():
            yield body

        try:
            form = await MultiPartParser(request.headers, chunks(), max_part_size=max_bytes).parse()
        except MultiPartException as err:
            raise HotdogInputError(f"malformed multipart body: {err.message}") from None
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if len(files) != 1:
            raise HotdogInputError(f"send one image file per request (the form has {len(files)} files)")
        body = await files[0].read()
    if not body:
        raise HotdogInputError("the image is empty (0 bytes)")
    return body
