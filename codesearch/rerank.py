"""A second stage over the best candidates: a cross-encoder reranker on a server.

A cross-encoder reads the question and one candidate together, so it can tell the function
that does what was asked from the neighbour in the same file that only shares its words,
the miss that fusion leaves most often (docs/quality.md). No reranker weights can be had on
the machines this project is measured on, so none runs in-process; people who serve one
point codesearch at it:

    codesearch query "..." --rerank-api-base http://gpu-box:8000/v1 --rerank-model Qwen/Qwen3-Reranker-0.6B

It speaks the rerank API that vLLM (`/v1/rerank`, `vllm serve ... --runner pooling`),
Infinity (`/v1/rerank`) and Jina and Cohere share: `POST {base}/rerank` with
`{"model", "query", "documents"}`, answered with `{"results": [{"index", "relevance_score"}]}`.

Qwen3-Reranker is a language model that judges "yes" or "no"; served as a sequence
classifier (vLLM's `hf_overrides` for it), its inputs must carry the chat template it was
trained on, and the server adds none: the client does (`template` "qwen3", chosen by the
model's name under "auto"; the template is the one in the model card and vLLM's example).

A reranker that does not answer never costs the user the answer: search keeps the first-stage
order and says so in a note (search.Searcher.answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import CodesearchError

RERANK_TIMEOUT_S = 30.0  # a question waits this long at most for the reranker
CONNECT_TIMEOUT_S = 3.0
DOCUMENT_CHARS = 2000  # of each candidate's text: its header, signature, doc comment and code
# what the reranker is asked, in English for every question (as the embedding instruction)
QWEN3_INSTRUCTION = "Given a question about code, retrieve the function or method that answers it"
_QWEN3_PREFIX = ('<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and '
                 'the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
                 '<|im_start|>user\n')
_QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


class RerankError(CodesearchError):
    """The reranker could not be reached or answered wrongly (search goes on without it)."""


def template_for(template: str, model: str) -> str:
    if template != "auto":
        return template
    return "qwen3" if "qwen3-reranker" in model.lower() else "plain"


@dataclass(frozen=True)
class RerankEndpoint:
    """Where the reranker is: a base URL (checked like --api-base), the model name to send,
    the input template, and how many of the best candidates it reorders."""

    base: str
    model: str
    template: str = "plain"
    top: int = 20
    key: str | None = field(default=None, repr=False, compare=False)


def format_pair(template: str, question: str, document: str) -> tuple[str, str]:
    """(query, document) as the server must receive them."""
    if template == "qwen3":
        return (f"{_QWEN3_PREFIX}<Instruct>: {QWEN3_INSTRUCTION}\n<Query>: {question}\n",
                f"<Document>: {document}{_QWEN3_SUFFIX}")
    return question, document


def candidate_text(path: str, qualname: str, signature: str, doc: str, code: str) -> str:
    """What the reranker reads of one candidate: where it is, what it is called, its doc
    comment and its code, cut to DOCUMENT_CHARS."""
    head = f"{path} {qualname}"
    parts = [head, signature] if signature and signature not in code else [head]
    if doc and doc not in code:
        parts.append(doc)
    parts.append(code)
    return "\n".join(parts)[:DOCUMENT_CHARS]


class RemoteReranker:
    """Scores (question, candidate) pairs on a rerank server; one HTTP client per process."""

    def __init__(self, endpoint: RerankEndpoint):
        import httpx

        self.endpoint = endpoint
        headers = {"Authorization": f"Bearer {endpoint.key}"} if endpoint.key else {}
        self._client = httpx.Client(headers=headers,
                                    timeout=httpx.Timeout(RERANK_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))

    @property
    def top(self) -> int:
        return self.endpoint.top

    def scores(self, question: str, documents: list[str]) -> list[float]:
        """One relevance score per document, in the documents' order (higher: more relevant)."""
        import httpx

        from .embedders.remote import error_reason, server_message

        if not documents:
            return []
        ep = self.endpoint
        pairs = [format_pair(ep.template, question, d) for d in documents]
        # only the fields every server of this API knows (vLLM warns about others)
        body = {"model": ep.model, "query": pairs[0][0], "documents": [d for _, d in pairs]}
        url = f"{ep.base}/rerank"
        try:
            response = self._client.post(url, json=body)
        except httpx.HTTPError as error:
            raise RerankError(f"the reranker at {ep.base} did not answer ({error_reason(error)})") from None
        if response.status_code != 200:
            said = server_message(response)
            raise RerankError(f"the reranker at {ep.base} refused the request (HTTP {response.status_code}"
                              f"{': ' + said if said else ''})")
        return _read_scores(ep.base, response, len(documents))

    def close(self) -> None:
        self._client.close()


def _read_scores(base: str, response, n: int) -> list[float]:
    """The scores of a `{"results": [{"index", "relevance_score"}]}` answer, checked: every
    document scored once, by index, with a finite number."""
    try:
        results = response.json()["results"]
        out: list[float | None] = [None] * n
        for item in results:
            i, score = int(item["index"]), float(item["relevance_score"])
            if not 0 <= i < n or out[i] is not None or score != score or score in (float("inf"), float("-inf")):
                raise ValueError(f"index {i}")
            out[i] = score
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise RerankError(f"the reranker at {base} answered something that is not a rerank result "
                          f"({type(error).__name__}: {str(error)[:80]})") from None
    if any(s is None for s in out):
        raise RerankError(f"the reranker at {base} scored {sum(s is not None for s in out)} of {n} candidates")
    return out  # type: ignore[return-value]


def reorder(ranked: list[tuple[int, float]], scores: list[float]) -> list[tuple[int, float]]:
    """The first len(scores) of `ranked` in the reranker's order (ties keep the first stage's
    order), then the rest as they were; each keeps its first-stage score."""
    head = ranked[: len(scores)]
    order = sorted(range(len(head)), key=lambda i: (-scores[i], i))
    return [head[i] for i in order] + ranked[len(scores):]
