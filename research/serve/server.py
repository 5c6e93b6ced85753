"""An HTTP server of a classifier run (FastAPI on uvicorn): `experiments.serve`.

  GET  /healthz    {"status": "ok"}
  GET  /metadata   the signature: inputs, preprocessing, class names, checkpoint, and what
                   answers: backend, quantized (the int8 mode, "" for float) and chosen
                   ("auto" when the server picked the backend)
  POST /predict    one input a request, by Content-Type: image/png or image/jpeg (a picture,
                   converted and resized like experiments.predict does), application/x-npy or
                   application/octet-stream (a .npy file), text/plain (a text), or
                   application/json {"array": nested list} or {"text": "..."}.
                   Answers {"class", "name", "probabilities", "batch_size"}.

Requests that arrive together are answered by one call of the model (`Batcher`): up to
`max_batch` rows, gathered for at most `batch_wait_ms` after the first. A malformed request
gets a 4xx with a message (413 too large, 415 unsupported type, 422 unreadable or the wrong
shape) and the server goes on serving.
"""

import asyncio
import contextlib
import json

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from research.errors import UserError
from research.serve import predict

CONTENT_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "application/x-npy": ".npy",
                 "application/octet-stream": ".npy", "text/plain": ".txt"}


class Batcher:
    """Gathers rows submitted concurrently into batches for `run` (batch dict -> [B, K]).

    Written here because neither FastAPI nor uvicorn batches requests. Batches are padded to
    the next power of two (at most `max_batch`) by repeating their last row, so a compiled
    backend sees a few batch sizes, not one per request count."""

    def __init__(self, run, max_batch: int, wait_s: float):
        self.run, self.max_batch, self.wait_s = run, max_batch, wait_s
        self.queue: asyncio.Queue = asyncio.Queue()
        self.batches = 0

    async def submit(self, row: dict) -> tuple[np.ndarray, int]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((row, future))
        return await future

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            deadline = loop.time() + self.wait_s
            while len(items) < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            rows = [row for row, _ in items]
            padded = min(self.max_batch, 1 << (len(rows) - 1).bit_length())
            rows += [rows[-1]] * (padded - len(rows))
            batch = {name: np.stack([row[name] for row in rows]) for name in rows[0]}
            try:
                probabilities = await asyncio.to_thread(self.run, batch)
            except Exception as e:  # noqa: BLE001  (the requests get the error; the server lives)
                for _, future in items:
                    future.set_exception(e)
                continue
            self.batches += 1
            for k, (_, future) in enumerate(items):
                future.set_result((np.asarray(probabilities[k]), len(items)))


def make_app(signature: dict, reader: predict.Reader, run, *, max_batch: int = 32,
             batch_wait_ms: float = 2.0, max_bytes: int = 10_000_000) -> FastAPI:
    batcher = Batcher(run, max_batch, batch_wait_ms / 1000)

    @contextlib.asynccontextmanager
    async def lifespan(_):
        task = asyncio.create_task(batcher.serve_forever())
        yield
        task.cancel()

    app = FastAPI(title="research classifier", lifespan=lifespan)
    app.state.batcher = batcher

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/metadata")
    async def metadata():
        return signature

    @app.post("/predict")
    async def predict_one(request: Request):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            return _error(413, f"the request has {int(length):,} bytes; the limit is {max_bytes:,}")
        body = await request.body()
        if len(body) > max_bytes:
            return _error(413, f"the request has {len(body):,} bytes; the limit is {max_bytes:,}")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            row = _row(reader, content_type, body)
        except UserError as e:
            return _error(422, str(e))
        except _Unsupported as e:
            return _error(415, str(e))
        probabilities, batch_size = await batcher.submit(row)
        return {**predict.answer(signature, probabilities), "batch_size": batch_size}

    return app


class _Unsupported(Exception):
    pass


def _row(reader: predict.Reader, content_type: str, body: bytes) -> dict:
    if content_type == "application/json":
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"the body is not JSON: {e}") from e
        except RecursionError as e:
            raise UserError("the JSON body is nested too deeply to read") from e
        if not isinstance(payload, dict) or not ({"array", "text"} & set(payload)):
            raise UserError('a JSON body is {"array": [...]} or {"text": "..."}')
        if "text" in payload:
            if not isinstance(payload["text"], str):
                raise UserError('"text" must be a string')
            return reader.text(payload["text"])
        try:
            array = np.asarray(payload["array"])
        except (ValueError, RecursionError) as e:
            raise UserError(f'"array" is not a rectangular array: {e}') from e
        return reader.array(array, "the array")
    if content_type not in CONTENT_TYPES:
        raise _Unsupported(f"unsupported Content-Type {content_type or '(none)'!r}; send one of "
                           f"{sorted([*CONTENT_TYPES, 'application/json'])}")
    return reader.decode(CONTENT_TYPES[content_type], body, "the request body")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)
