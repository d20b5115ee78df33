"""`codesearch serve`: an OpenAI-compatible embedding server over codesearch's fastest local path.

One GPU box can then embed for many laptops, and `codesearch index --api-base` can spread a
job over several servers (one per GPU). Endpoints:

- `POST /v1/embeddings`: `input` is a string, a list of strings, a list of token ids or a list
  of lists of token ids; `model` (optional; must be a name this server answers to),
  `dimensions` (Matryoshka: the first N dimensions, normalised again), `encoding_format`
  `float` (default) or `base64` (little-endian float32, as OpenAI sends it). The answer is
  OpenAI's: `data[i].embedding`, `usage.prompt_tokens`.
- `GET /v1/models`, `GET /health` (with what the server has done so far).

It is an OpenAI-compatible server, so it adds no prompts: clients send the final text
(codesearch's client adds `Instruct: ...\\nQuery:` or `query: ` / `passage: ` itself). What the
model needs to be the model (truncation to its limit, Qwen3's closing `<|endoftext|>`, pooling,
L2 normalisation) is done here, as in process. Token ids are taken as given (no end token is
added), but must be in the vocabulary and within the model's limit.

Concurrent requests are embedded together: each request's texts are tokenized on a thread
(the tokenizer works outside the GIL) and queued; one worker thread takes whatever is queued, up
to `job_tokens`, and runs it as one job through the backend (the packed GPU path then fills its
batches across requests), so many small requests cost what one big one does.

Safety: it listens on loopback unless told otherwise, and then only with a key
(CODESEARCH_API_KEY, checked as a bearer token); a request that is too big or malformed gets a
4xx JSON error and the server carries on; Ctrl-C stops accepting connections, lets the requests
in flight finish, then exits. Built on Starlette and uvicorn.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import json
import logging
import queue
import sys
import threading
import time

import numpy as np

from .embedders.base import unit_rows

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BODY_BYTES = 64 << 20
MAX_INPUTS = 2048  # per request, as OpenAI's API
MAX_REQUEST_TOKENS = 1 << 20
DRAIN_S = 30  # Ctrl-C: the longest the requests in flight get to finish


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RequestError(Exception):
    """A request we refuse: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str, code: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.code = code


class Batcher:
    """Requests queue up; one worker thread embeds what is queued, up to `job_tokens`, as one job."""

    def __init__(self, backend, job_tokens: int):
        self.backend = backend
        self.job_tokens = job_tokens
        self.queue: queue.Queue = queue.Queue()
        self.jobs = 0  # jobs finished
        self.active = 0  # inputs being embedded right now
        self.thread = threading.Thread(target=self._run, name="codesearch-serve-embed", daemon=True)
        self.thread.start()

    async def embed(self, token_ids: list[list[int]]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.put((token_ids, loop, future))
        return await future

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=60)

    def _take(self):
        """A job: the first waiting request, then whatever else is queued within the budget."""
        first = self.queue.get()
        if first is None:
            return None
        items, tokens = [first], sum(len(t) for t in first[0])
        while tokens < self.job_tokens:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self.queue.put(None)  # stop after this job
                break
            items.append(item)
            tokens += sum(len(t) for t in item[0])
        return items

    def _run(self) -> None:
        while True:
            items = self._take()
            if items is None:
                return
            ids = [seq for token_ids, _loop, _fut in items for seq in token_ids]
            self.active = len(ids)
            try:
                vectors = self.backend.embed_token_ids(ids)
            except Exception as error:  # noqa: BLE001 - the requests get a 500, the server lives on
                log.exception("embedding failed")
                for _ids, loop, fut in items:
                    loop.call_soon_threadsafe(_settle, fut, None, error)
                continue
            finally:
                self.active = 0
            self.jobs += 1
            start = 0
            for token_ids, loop, fut in items:
                part = vectors[start:start + len(token_ids)]
                start += len(token_ids)
                loop.call_soon_threadsafe(_settle, fut, part, None)


def _settle(future, result, error) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class EmbeddingService:
    """What the HTTP layer calls: checks a request, tokenizes, embeds, encodes the answer."""

    def __init__(self, spec, backend, names: list[str], key: str | None = None, job_tokens: int | None = None):
        self.spec = spec
        self.backend = backend
        self.names = list(dict.fromkeys(names))
        self.key = key
        self.dim = backend.dim
        # ids past the embedding table would crash the model (on CUDA: the whole process)
        self.vocab = int(getattr(backend.model.model.config, "vocab_size", 0) or len(backend.model.tokenizer))
        budget = getattr(backend, "token_budget", None) or 16384
        self.batcher = Batcher(backend, job_tokens or max(2 * budget, 16384))
        self.stats = {"requests": 0, "inputs": 0, "tokens": 0, "errors": 0}
        self.started = time.time()

    def check_key(self, header: str | None) -> None:
        if self.key is None:
            return
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.key.encode()):
            raise RequestError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                               "invalid_api_key")

    def parse(self, body: bytes) -> dict:
        try:
            req = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise RequestError(400, f"the body is not JSON ({error})") from None
        if not isinstance(req, dict):
            raise RequestError(400, "the body must be a JSON object with an 'input' field")
        model = req.get("model")
        if model not in (None, "") and model not in self.names:
            raise RequestError(404, f"model {model!r} is not served here; this server serves {self.names[0]!r}",
                               "model_not_found")
        fmt = req.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise RequestError(400, f"encoding_format must be 'float' or 'base64', not {fmt!r}")
        dims = req.get("dimensions")
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= self.dim):
            raise RequestError(400, f"dimensions must be an integer from 1 to {self.dim}, not {dims!r}")
        texts, ids = self._inputs(req.get("input"))
        return {"texts": texts, "ids": ids, "format": fmt, "dims": dims}

    def _inputs(self, value):
        """(texts, None) or (None, token id lists), checked."""
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise RequestError(400, "'input' must be a string, a non-empty list of strings, or lists of token ids")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            value = [value]
        if len(value) > MAX_INPUTS:
            raise RequestError(413, f"{len(value)} inputs in one request; at most {MAX_INPUTS}", "too_many_inputs")
        if all(isinstance(v, str) for v in value):
            if sum(len(v) for v in value) > MAX_REQUEST_TOKENS * 8:
                raise RequestError(413, "the request's text is too long; send it in smaller requests")
            return value, None
        if all(isinstance(v, list) for v in value):
            total = 0
            for seq in value:
                if not seq or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < self.vocab
                                      for t in seq):
                    raise RequestError(400, f"token ids must be non-empty lists of integers from 0 to {self.vocab - 1}")
                if len(seq) > self.spec.max_tokens:
                    raise RequestError(400, f"an input of {len(seq)} tokens is over the model's limit of "
                                            f"{self.spec.max_tokens}")
                total += len(seq)
            if total > MAX_REQUEST_TOKENS:
                raise RequestError(413, f"{total} tokens in one request; at most {MAX_REQUEST_TOKENS}")
            return None, value
        raise RequestError(400, "'input' must be a string, a list of strings, or lists of token ids (not a mix)")

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.backend.tokenize(texts)

    def answer(self, vectors: np.ndarray, ids: list[list[int]], fmt: str, dims: int | None) -> bytes:
        if dims and dims < vectors.shape[1]:
            vectors = unit_rows(vectors, dims)
        if fmt == "base64":
            rows = [base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode("ascii") for v in vectors]
        else:
            rows = vectors.astype(np.float32).tolist()
        tokens = sum(len(t) for t in ids)
        self.stats["requests"] += 1
        self.stats["inputs"] += len(ids)
        self.stats["tokens"] += tokens
        body = {"object": "list", "model": self.names[0],
                "data": [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    def health(self) -> dict:
        return {"status": "ok", "model": self.names[0], "dim": self.dim, "device": self.backend.device,
                "path": self.backend.path, "jobs": self.batcher.jobs, "active": self.batcher.active,
                "uptime_s": round(time.time() - self.started, 1), **self.stats}


def build_app(service: EmbeddingService):
    """The Starlette application over `service`."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def error(status: int, message: str, code: str = "invalid_request_error") -> JSONResponse:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)

    async def read_body(request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            raise RequestError(413, f"the body is over {MAX_BODY_BYTES >> 20} MiB", "body_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise RequestError(413, f"the body is over {MAX_BODY_BYTES >> 20} MiB", "body_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    async def embeddings(request):
        try:
            service.check_key(request.headers.get("authorization"))
            req = service.parse(await read_body(request))
            ids = req["ids"]
            if ids is None:
                ids = await run_in_threadpool(service.tokenize, req["texts"])
            vectors = await service.batcher.embed(ids)
            body = await run_in_threadpool(service.answer, vectors, ids, req["format"], req["dims"])
            return Response(body, media_type="application/json")
        except RequestError as problem:
            service.stats["errors"] += 1
            return error(problem.status, str(problem), problem.code)
        except Exception as problem:  # noqa: BLE001 - one failed request must not stop the server
            log.exception("request failed")
            service.stats["errors"] += 1
            return error(500, f"embedding failed: {type(problem).__name__}: {problem}", "server_error")

    async def models(request):
        try:
            service.check_key(request.headers.get("authorization"))
        except RequestError as problem:
            return error(problem.status, str(problem), problem.code)
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": int(service.started), "owned_by": "codesearch"}
            for name in service.names[:1]]})

    async def health(request):
        return JSONResponse(service.health())

    async def http_error(request, exc):
        return error(exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else "http_error")

    routes = [Route("/v1/embeddings", embeddings, methods=["POST"]), Route("/embeddings", embeddings, methods=["POST"]),
              Route("/v1/models", models, methods=["GET"]), Route("/health", health, methods=["GET"])]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def run_server(service: EmbeddingService, host: str, port: int, announce=None) -> dict:
    """Serve until Ctrl-C (or SIGTERM); the requests in flight then finish (up to DRAIN_S).
    `announce(url)` is called once the socket listens. Returns the final statistics."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started and announce:
                bound = self.servers[0].sockets[0].getsockname() if self.servers else (host, port)
                shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
                announce(f"http://{shown}:{bound[1]}/v1")

    config = uvicorn.Config(build_app(service), host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=DRAIN_S, lifespan="off")
    server = Server(config)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, once drained: a normal stop
        pass
    finally:
        service.batcher.stop()
    if not server.started:
        raise OSError(f"could not listen on {host}:{port} (in use, or not an address of this machine?)")
    return service.health()


def warm(service: EmbeddingService, total_tokens: int = 10 ** 12) -> str:
    """Get the backend ready for a long life of requests (on CUDA: compile, unless the `compile`
    setting says never) and run one input through it; returns the backend's plan line."""
    plan = getattr(service.backend, "plan", None)
    line = plan(total_tokens) if plan else service.backend.path
    service.backend.embed_token_ids(service.tokenize(["warm up"]))
    return line


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
