"""The OpenAI-compatible client: embeddings computed by servers (vLLM, SGLang, TEI, Infinity,
`codesearch serve`), reached over `POST {base}/embeddings`.

A server only runs the model. What makes a vector mean what the index expects stays here,
as in every other backend (base.py):

- the prompts: Qwen3-Embedding's `Instruct: ...\\nQuery:` on questions, e5's `query: ` and
  `passage: `; OpenAI-compatible servers add none, and codesearch's own server adds none either;
- the end-of-text token: none is sent. Qwen3-Embedding's tokenizer.json appends
  `<|endoftext|>` itself (a TemplateProcessing post-processor, added to the model repository in
  June 2025), and vLLM, SGLang, TEI and Infinity tokenize with it; a second one sent in the
  text would change the vector. `codesearch serve` appends it when the tokenizer did not;
- L2 normalisation and the Matryoshka cut: `dimensions` is asked for when the spec sets a
  size, and every row is cut and normalised here too, whatever the server did.

How it talks to the servers (docs/remote.md):
- documents go in requests of at most REQUEST_TOKENS tokens and `max_items` inputs (halved
  when a server answers 413: its batch limit, e.g. TEI's --max-client-batch-size);
- `in_flight` requests per endpoint at once; each request goes to the live endpoint with the
  least outstanding work (tokens sent and not answered), so replicas of different speeds stay
  equally busy and a dead one gets none;
- connection errors, timeouts, 429 and 5xx are retried with exponential backoff (honouring
  Retry-After), on another endpoint where there is one; an endpoint that refused a connection
  is left alone for a while; before any server has answered, a few tries only (a wrong URL is
  reported in seconds, an outage in the middle of a job is waited out for about half a minute);
- every answer is checked: one vector per input, by index, of the model's dimension; float
  and base64 (little-endian float32, as OpenAI sends it) are both read. base64 is asked for:
  a quarter of the bytes and no float parsing.
Token counts before the job are estimated from the text's length (the plan line says so),
except for texts long enough to pass the model's limit, which the model's tokenizer.json counts
and cuts where its folder is here (the `tokenizers` library, no torch); the progress line uses
the server's own `usage.prompt_tokens` when it reports it.

Nothing here imports torch or transformers: a question through an endpoint starts fast.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

from ..errors import CodesearchError, EndpointError
from .base import Batches, DocumentJob, Embedder, Progress, unit_rows
from .batching import group_by_budget
from .models import native_dim, served_name, tokenizer_file
from .spec import ModelSpec

log = logging.getLogger(__name__)

REQUEST_TOKENS = 8192  # tokens per request (estimated or counted)
REQUEST_ITEMS = 64  # inputs per request, until a server says it takes fewer
IN_FLIGHT = 4  # requests at once per endpoint
DOCUMENT_ATTEMPTS = 8  # tries per request while indexing (about 30 s of backoff in all)
QUERY_ATTEMPTS = 3  # a question fails fast
BACKOFF_S = 0.5  # first retry delay, doubled each time, at most MAX_BACKOFF_S
MAX_BACKOFF_S = 8.0
DOWN_S = 2.0  # an endpoint that refused a connection is skipped this long (doubled, capped)
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0  # a slow CPU server with a full queue can take minutes per request
BYTES_PER_TOKEN = 3.0  # estimate without a tokenizer: code and CJK text, UTF-8 bytes per token
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Endpoints:
    """Where to embed: one or more OpenAI-compatible base URLs, the model name to send, and the
    bearer key (from the environment; never recorded, never printed)."""

    bases: tuple[str, ...]
    model: str
    key: str | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict:
        """What an index stores about them (no key)."""
        return {"bases": list(self.bases), "model": self.model}

    def describe(self) -> str:
        return self.bases[0] if len(self.bases) == 1 else f"{len(self.bases)} endpoints ({', '.join(self.bases)})"


def parse_bases(text: str, where: str = "--api-base") -> tuple[str, ...]:
    """`URL[,URL...]` -> checked base URLs without a trailing slash."""
    bases = []
    for part in str(text).split(","):
        url = part.strip().rstrip("/")
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CodesearchError(f"{where}: {url!r} is not an http(s) URL; give the server's OpenAI-compatible "
                                  f"base, e.g. http://gpu-box:8765/v1")
        if parts.username or parts.password:
            raise CodesearchError(f"{where}: {parts.hostname} carries a password in the URL; put the key in "
                                  f"CODESEARCH_API_KEY instead (URLs are recorded in the index)")
        bases.append(url)
    if not bases:
        raise CodesearchError(f"{where}: no URL given")
    return tuple(dict.fromkeys(bases))


def make_endpoints(spec: ModelSpec, bases: str | tuple[str, ...] | list[str], model: str | None,
                   key: str | None) -> Endpoints:
    if isinstance(bases, str):
        bases = parse_bases(bases)
    return Endpoints(tuple(bases), model or served_name(spec), key)


class _Replica:
    """One endpoint and what is outstanding on it."""

    def __init__(self, base: str, key: str | None, in_flight: int):
        import httpx

        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.base = base
        self.client = httpx.Client(headers=headers, timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                                   limits=httpx.Limits(max_connections=in_flight + 1,
                                                       max_keepalive_connections=in_flight + 1))
        self.outstanding = 0  # tokens sent and not answered
        self.down_until = 0.0
        self.down_for = DOWN_S
        self.last_error = ""


class _Retry(Exception):
    """A failure worth another try (on another endpoint where there is one)."""

    def __init__(self, message: str, wait_s: float | None = None, down: bool = False):
        super().__init__(message)
        self.wait_s = wait_s
        self.down = down


class _TooLarge(Exception):
    """The server takes fewer inputs (or bytes) per request than we sent."""


def server_message(response) -> str:
    """(Also rerank.py's.) The error text of an answer, whatever the server's shape ({"error": {"message"}} from
    OpenAI and vLLM, {"error": "..."} from TEI, {"detail": ...} from FastAPI servers)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:300] if response.text.strip() else ""
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body.get("message", "")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if isinstance(err, list) and err and isinstance(err[0], dict):
            err = err[0].get("msg", err[0])
        return str(err)[:300]
    return str(body)[:300]


def decode_embedding(value) -> np.ndarray:
    """One `embedding` field: a list of floats, or base64 of little-endian float32."""
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32)
    return np.asarray(value, dtype=np.float32)


class RemoteEmbedder(Embedder):
    """Embeds through OpenAI-compatible servers; see the module's docstring."""

    path = "remote"

    def __init__(self, spec: ModelSpec, api: Endpoints, in_flight: int = IN_FLIGHT,
                 request_tokens: int = REQUEST_TOKENS, max_items: int = REQUEST_ITEMS):
        self.spec = spec
        self.api = api
        self.device = api.describe()
        self.in_flight = max(1, in_flight)
        self.request_tokens = request_tokens
        self.max_items = max_items
        self.replicas = [_Replica(b, api.key, self.in_flight) for b in api.bases]
        self._lock = threading.Lock()
        self._native = native_dim(spec)
        self._send_dims = bool(spec.dims)
        self._encoding = "base64"
        self._tokenizer = None
        self._tokenizer_loaded = False
        self._closed = threading.Event()
        self._answered = False  # until a server has answered, an unreachable one fails fast

    # -- what the indexer asks ----------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self.spec.dims:
            return self.spec.dims
        if self._native is None:  # nothing says: ask the server once
            self._embed_texts(["dimension"], QUERY_ATTEMPTS)
        return self._native

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prompted = self._fit([self.spec.query_prompt + t for t in texts])[0]
        return self._embed_texts(prompted, QUERY_ATTEMPTS)[0]

    def document_job(self, texts: list[str]) -> DocumentJob:
        prompted, counts, counted = self._fit([self.spec.document_prompt + t for t in texts])
        how = "counted by the model's tokenizer" if counted else \
            "estimated from text length until the server reports them"
        line = (f"remote: {self.device}, model {self.api.model}, up to {self.in_flight} requests in flight "
                f"per endpoint; token counts {how}")
        return DocumentJob(count=len(texts), tokens=sum(counts), estimate_s=None,
                           run=lambda progress: self._stream(prompted, counts, progress), decide=lambda: line)

    def close(self) -> None:
        self._closed.set()
        for r in self.replicas:
            r.client.close()

    # -- tokens -------------------------------------------------------------------------------
    def _tokenizer_for(self):
        if not self._tokenizer_loaded:
            self._tokenizer_loaded = True
            path = tokenizer_file(self.spec)
            if path is not None:
                try:
                    from tokenizers import Tokenizer

                    self._tokenizer = Tokenizer.from_file(str(path))
                    self._tokenizer.no_truncation()
                    self._tokenizer.no_padding()
                except Exception as error:  # noqa: BLE001 - estimates serve as well
                    log.debug("no tokenizer from %s: %s", path, error)
        return self._tokenizer

    def _fit(self, texts: list[str]) -> tuple[list[str], list[int], bool]:
        """(texts cut to the model's limit, their token counts, whether all were counted).

        A text over `max_tokens` is cut where its last token that fits ends, as the in-process
        paths truncate (servers differ: vLLM refuses an input over the model's length, TEI
        truncates only with --auto-truncate). Only texts that can be that long are tokenized (over
        half as many bytes as the limit: a token is a byte or more): the others' counts are
        estimated, so a job of short pieces starts at once; the server's own counts replace
        the estimates as answers come."""
        tok = self._tokenizer_for()
        counts = [estimate_tokens(t) for t in texts]
        if tok is None:
            return texts, counts, False
        room = (self.spec.max_tokens - 2) // 2  # bytes that surely fit, with a margin for word markers
        long = [i for i, t in enumerate(texts) if len(t) * 4 > room and len(t.encode("utf-8")) > room]
        out = list(texts)
        for i, enc in zip(long, tok.encode_batch([texts[i] for i in long]) if long else []):
            n = len(enc.ids)
            specials = sum(enc.special_tokens_mask)
            limit = self.spec.max_tokens - max(specials, 1 if self.spec.append_eos else 0)
            if n > self.spec.max_tokens and limit > 0:
                ends = [end for (_start, end), special in zip(enc.offsets, enc.special_tokens_mask) if not special]
                if len(ends) > limit:
                    out[i] = texts[i][: ends[limit - 1]]
                    n = self.spec.max_tokens
            counts[i] = n + (1 if self.spec.append_eos and not specials else 0)
        return out, counts, len(long) == len(texts)

    # -- running a job ------------------------------------------------------------------------
    def _stream(self, texts: list[str], counts: list[int], progress: Progress | None) -> Batches:
        """Yield (indices, vectors) per request as answers arrive, with up to `in_flight`
        requests per endpoint outstanding; the first failure that retries cannot fix stops the
        job (the batches yielded before it are the indexer's to keep)."""
        if not texts:
            return
        batches = group_by_budget(counts, self.request_tokens, padded=False, max_items=self.max_items)
        workers = min(len(batches), self.in_flight * len(self.replicas))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="codesearch-remote")
        queued = iter(batches)
        running: dict = {}

        def submit() -> bool:
            batch = next(queued, None)
            if batch is None:
                return False
            fut = pool.submit(self._embed_texts, [texts[i] for i in batch], DOCUMENT_ATTEMPTS,
                              sum(counts[i] for i in batch))
            running[fut] = batch
            return True

        try:
            for _ in range(workers * 2):  # a second request per worker waits its turn, queued
                if not submit():
                    break
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    batch = running.pop(fut)
                    vectors, used = fut.result()
                    if progress:
                        progress(len(batch), used if used else sum(counts[i] for i in batch))
                    yield batch, vectors
                    submit()
        finally:
            for fut in running:
                fut.cancel()
            pool.shutdown(wait=False, cancel_futures=True)

    def _embed_texts(self, texts: list[str], attempts: int, tokens: int | None = None) -> tuple[np.ndarray, int]:
        """One request's texts -> (unit vectors, tokens the server counted or 0), split in
        halves when the server takes fewer inputs per request."""
        try:
            return self._request(texts, attempts, tokens if tokens is not None else len(texts))
        except _TooLarge as error:
            if len(texts) == 1:
                raise EndpointError(f"the embedding server refused a single input as too large ({error}); "
                                    f"lower its limit or raise the server's (e.g. TEI's --max-batch-tokens)") from None
            with self._lock:
                self.max_items = max(1, min(self.max_items, len(texts) // 2))
            half = len(texts) // 2
            share = (tokens or len(texts)) // 2
            a, ua = self._embed_texts(texts[:half], attempts, share)
            b, ub = self._embed_texts(texts[half:], attempts, share)
            return np.concatenate([a, b]), ua + ub

    def _pick(self, tokens: int) -> _Replica:
        """The live endpoint with the least outstanding work; if all are resting, the one that
        wakes first, after waiting for it."""
        while True:
            with self._lock:
                now = time.monotonic()
                live = [r for r in self.replicas if r.down_until <= now]
                if live:
                    best = min(live, key=lambda r: r.outstanding)
                    best.outstanding += tokens
                    return best
                wake = min(r.down_until for r in self.replicas) - now
            if self._closed.wait(min(max(wake, 0.01), MAX_BACKOFF_S)):
                raise EndpointError("the embedding client was closed")

    def _request(self, texts: list[str], attempts: int, tokens: int) -> tuple[np.ndarray, int]:
        """Post with retries. Until some server has answered, QUERY_ATTEMPTS at most: an endpoint
        that is down from the start is a mistake to report, not an outage to wait out."""
        failures: list[str] = []
        delay = BACKOFF_S
        if not self._answered:
            attempts = min(attempts, QUERY_ATTEMPTS)
        for attempt in range(attempts):
            replica = self._pick(tokens)
            try:
                return self._post(replica, texts)
            except _Retry as error:
                failures.append(f"{replica.base}: {error}")
                replica.last_error = str(error)
                with self._lock:
                    if error.down:
                        replica.down_until = time.monotonic() + replica.down_for
                        replica.down_for = min(replica.down_for * 2, 30.0)
                if attempt + 1 == attempts or self._closed.is_set():
                    break
                pause = error.wait_s if error.wait_s is not None else delay * (0.75 + random.random() / 2)
                if len(self.replicas) > 1 and error.down:
                    pause = min(pause, 0.1)  # another endpoint may answer now
                if self._closed.wait(min(pause, MAX_BACKOFF_S * 4)):
                    break
                delay = min(delay * 2, MAX_BACKOFF_S)
            finally:
                with self._lock:
                    replica.outstanding -= tokens
        raise EndpointError(unreachable_message(self.api.bases, failures, attempts))

    def _post(self, replica: _Replica, texts: list[str]) -> tuple[np.ndarray, int]:
        import httpx

        payload = {"model": self.api.model, "input": texts, "encoding_format": self._encoding}
        if self._send_dims:
            payload["dimensions"] = self.spec.dims
        try:
            response = replica.client.post(f"{replica.base}/embeddings", json=payload)
        except httpx.TimeoutException as error:
            raise _Retry(f"no answer in time ({type(error).__name__})") from None
        except httpx.ConnectError as error:
            raise _Retry(f"cannot connect ({error_reason(error)})", down=True) from None
        except httpx.TransportError as error:  # reset, closed mid-answer: the server died or restarted
            raise _Retry(f"connection lost ({error_reason(error)})", down=True) from None
        status = response.status_code
        if status in RETRY_STATUS or status >= 500:
            after = response.headers.get("retry-after", "")
            wait_s = float(after) if after.replace(".", "", 1).isdigit() else None
            raise _Retry(f"HTTP {status} {server_message(response)}".strip(), wait_s=wait_s)
        if status == 413:
            raise _TooLarge(server_message(response) or "HTTP 413")
        if status != 200:
            message = server_message(response)
            lowered = message.lower()
            if status in (400, 422) and ("batch" in lowered and ("size" in lowered or "large" in lowered)):
                raise _TooLarge(message)
            if status in (400, 422) and self._send_dims and ("dimension" in lowered or "matryoshka" in lowered):
                self._send_dims = False  # the server cannot cut: we do (unit_rows below)
                return self._post(replica, texts)
            if status in (400, 422) and self._encoding == "base64" and "encoding" in lowered:
                self._encoding = "float"
                return self._post(replica, texts)
            raise EndpointError(refusal_message(replica.base, status, message, self.api.model))
        with self._lock:
            replica.down_for = DOWN_S
        self._answered = True
        return self._vectors(replica.base, response, len(texts))

    def _vectors(self, base: str, response, n: int) -> tuple[np.ndarray, int]:
        """Check an answer (count, order, dimension) and return unit rows and the server's token count."""
        try:
            body = response.json()
            data = body["data"]
            rows = sorted(data, key=lambda d: d.get("index", 0))
            vectors = [decode_embedding(d["embedding"]) for d in rows]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise EndpointError(f"the embedding server at {base} sent an answer that is not OpenAI's embeddings "
                                f"format ({type(error).__name__}: {error}); is --api-base its /v1 base?") from None
        if len(vectors) != n or [d.get("index", i) for i, d in enumerate(rows)] != list(range(n)):
            raise EndpointError(f"the embedding server at {base} returned {len(vectors)} vectors for {n} inputs")
        sizes = {v.shape[0] for v in vectors}
        size = sizes.pop() if len(sizes) == 1 else None
        dims = self.spec.dims
        fits = size is not None and (size == self._native or (dims is not None and size == dims)
                                     or (self._native is None and size >= (dims or 1)))
        if not fits:
            got = "vectors of different sizes" if size is None else f"{size}-dimensional vectors"
            raise EndpointError(f"the embedding server at {base} returned {got}, but model {self.spec.id} gives "
                                f"{dims or self._native}; is it serving another model? (--api-model "
                                f"{self.api.model} was asked for)")
        if self._native is None and size != dims:
            self._native = size
        matrix = unit_rows(np.stack(vectors), self.spec.dims)
        if not np.isfinite(matrix).all():
            raise EndpointError(f"the embedding server at {base} returned vectors with NaN or infinite values")
        usage = body.get("usage") if isinstance(body, dict) else None
        used = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return matrix, int(used) if isinstance(used, (int, float)) and used > 0 else 0


def estimate_tokens(text: str) -> int:
    return max(1, int(len(text.encode("utf-8")) / BYTES_PER_TOKEN)) + 2


def error_reason(error) -> str:
    """A connection error in a few words (also rerank.py's)."""
    text = str(error).strip()
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0][:120] if text else type(error).__name__


def unreachable_message(bases, failures: list[str], attempts: int) -> str:
    last = failures[-1] if failures else "no answer"
    if len(bases) == 1:
        head = f"cannot reach the embedding server at {bases[0]} ({last.split(': ', 1)[-1]}) after {attempts} tries"
    else:
        seen = {}
        for f in failures:
            base, _, why = f.partition(": ")
            seen[base] = why
        head = (f"no embedding server answered after {attempts} tries ("
                + "; ".join(f"{b}: {seen.get(b, 'not tried')}" for b in bases) + ")")
    return (f"{head}; start it (e.g. `codesearch serve`), or point codesearch at one that runs with "
            f"--api-base URL (--api-base local embeds on this machine); the vectors embedded so far are kept")


def refusal_message(base: str, status: int, message: str, model: str) -> str:
    said = f": {message}" if message else ""
    if status in (401, 403):
        return (f"the embedding server at {base} refused the request (HTTP {status}{said}); set "
                f"CODESEARCH_API_KEY (or OPENAI_API_KEY) to its key")
    if status == 404:
        return (f"the embedding server at {base} answered 404{said}; check that the base URL ends where the "
                f"server's /embeddings lives (usually /v1) and that it serves model {model!r} (--api-model)")
    return f"the embedding server at {base} refused the request (HTTP {status}{said})"
