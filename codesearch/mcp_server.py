"""`codesearch mcp`: one repository's code search as an MCP server for coding agents.

Tools, each with a JSON schema for its arguments and one for its structured result (the
pydantic models below, which the SDK turns into `inputSchema` / `outputSchema`):

- `search(query, k, language, path, mode, threshold)`: functions that answer a question in
  English or Chinese, best first, each with its location, name, language, score and first lines;
- `index_status()`: what is indexed, with which model, and how fresh it is;
- `reindex(rebuild)`: bring the index up to date (incremental), with progress notifications.

Built on the official Python SDK's high-level server (`mcp.server.mcpserver.MCPServer`),
over stdio (default) or streamable HTTP on a loopback address. It calls the application
layer only. The index is opened once and stays warm for the session (app.SearchSession
reopens itself when the index changes, also after `reindex`). The application layer runs on
two worker threads, never in the event loop: one answers questions (its SQLite connection
stays on the thread that opened it), the other reindexes, so questions are answered while
an update runs.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from . import __version__
from .app import (Embedders, Query, SearchSession, Workspace, hit_excerpts, hit_for_tools, index_repository,
                  index_status, open_workspace)
from .errors import CodesearchError, NoIndexError, user_error

LOOPBACK = ("127.0.0.1", "::1", "localhost")

INSTRUCTIONS = """Semantic code search over one repository (functions and methods, found by meaning, \
in English or Chinese). Use `search` before reading files when you look for where something is \
done; hits give the path (relative to the repository root), the line range and the first lines. \
Scores are 0-1; hits below `threshold` are left out, so an empty list means nothing in the \
repository matches well. Call `reindex` after editing files so that search sees the changes."""


class SearchHit(BaseModel):
    path: str = Field(description="File, relative to the repository root")
    abs_path: str = Field(description="The same file, absolute")
    start_line: int = Field(description="First line of the function (1-based)")
    end_line: int = Field(description="Last line of the function (inclusive)")
    line: int = Field(description="The line that names the function")
    name: str
    qualname: str = Field(description="Qualified name, e.g. Backoff.call")
    language: str
    kind: str = Field(description="function, method or file")
    score: float = Field(description="0-1, higher is better; the same scale in every mode")
    signature: str = ""
    snippet: str = Field(description="The function's first lines, as indexed")
    snippet_start_line: int = Field(description="The line number of the snippet's first line")


class SearchResult(BaseModel):
    query: str
    repo: str
    threshold: float
    hits: list[SearchHit]
    notes: list[str] = Field(default_factory=list,
                             description="What was changed about the question (a long one is shortened)")


class IndexStatus(BaseModel):
    repo: str
    index_dir: str
    indexed: bool = Field(description="False until the first reindex")
    model: str | None = None
    files: int = 0
    units: int = Field(0, description="Functions and methods")
    chunks: int = Field(0, description="Embedded pieces")
    languages: dict[str, int] = Field(default_factory=dict)
    updated_at: float | None = Field(None, description="Unix time of the last update")
    age_s: float | None = None
    changed_since: int = Field(0, description="Files changed since the last update (reindex picks them up)")
    deleted_since: int = 0


class ReindexResult(BaseModel):
    files: int
    files_parsed: int = Field(description="Files read again because they changed")
    files_removed: int
    units: int
    chunks_embedded: int = Field(description="Pieces embedded by this run (unchanged ones are reused)")
    chunks_reused: int
    skipped: int = Field(description="Files skipped (binary, too large, symlinks)")
    languages: dict[str, int]
    model: str
    seconds: float


class _Progress:
    """The indexer's reporter, as MCP progress notifications on the reindex call (sent from the
    indexer's threads into the event loop; values only ever increase, as the protocol asks)."""

    def __init__(self, ctx: Context, loop: asyncio.AbstractEventLoop):
        self.ctx, self.loop = ctx, loop
        self.total = 0
        self.done = 0
        self.last_sent: float | None = None
        self.last_time = 0.0

    def _send(self, value: float, total: float | None, message: str) -> None:
        if self.last_sent is not None and value <= self.last_sent:
            return
        self.last_sent = value
        asyncio.run_coroutine_threadsafe(self.ctx.report_progress(value, total, message), self.loop)

    def _log(self, message: str) -> None:
        asyncio.run_coroutine_threadsafe(self.ctx.info(message), self.loop)

    def begin(self) -> None:
        self._send(0, None, "updating the index")

    def info(self, msg: str) -> None:
        self._log(msg)

    def warn(self, msg: str) -> None:
        self._log(msg)

    def start_embedding(self, total: int, tokens: int, device: str, estimate_s: float | None = None) -> None:
        self.total, self.done = total, 0
        self._log(f"embedding {total} pieces ({tokens} tokens) on {device}")

    def embedded(self, n: int, tokens: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.done >= self.total or now - self.last_time >= 0.25:
            self.last_time = now
            self._send(self.done, self.total, f"embedded {self.done}/{self.total} pieces")

    def done_embedding(self) -> None: ...

    def finish(self) -> None:
        self._send(max(self.total, 1), max(self.total, 1), "index up to date")


class CodeSearchTools:
    """What the tools do, on the application layer; the MCP wiring is in build_server."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self._search_thread = ThreadPoolExecutor(1, thread_name_prefix="codesearch-search")
        self._index_thread = ThreadPoolExecutor(1, thread_name_prefix="codesearch-index")
        self._session: SearchSession | None = None
        self._index_embedders: Embedders | None = None

    # -- on the worker threads ------------------------------------------------------------
    def _open(self) -> SearchSession:
        if self._session is None:
            self._session = SearchSession(self.ws)
        return self._session

    def warm_up(self) -> None:
        """Load what a question needs (the index, the model, the Chinese dictionaries) before the first one."""
        def warm():
            try:
                self._open().search(Query("读取 warm up", k=1))
            except CodesearchError:
                pass  # no index yet: the first search says so
        self._search_thread.submit(warm)

    def _search(self, query: Query) -> SearchResult:
        answer = self._open().answer(query)
        hits = [h.to_json() for h in answer.hits]
        out = []
        for h, ex in zip(hits, hit_excerpts(self.ws, hits)):
            h = hit_for_tools(self.ws, h)
            out.append(SearchHit(**{k: h[k] for k in ("path", "abs_path", "start_line", "end_line", "line", "name",
                                                      "qualname", "language", "kind", "score", "signature")},
                                 snippet="\n".join(ex.lines), snippet_start_line=ex.first_line))
        return SearchResult(query=query.text, repo=str(self.ws.root), threshold=query.threshold, hits=out,
                            notes=list(answer.notes))

    def _status(self) -> IndexStatus:
        if not self.ws.has_index:
            return IndexStatus(repo=str(self.ws.root), index_dir=str(self.ws.index_dir), indexed=False)
        info = index_status(self.ws)
        keep = set(IndexStatus.model_fields) - {"indexed"}
        return IndexStatus(indexed=True, **{k: v for k, v in info.items() if k in keep})

    def _reindex(self, rebuild: bool, reporter: _Progress) -> ReindexResult:
        if self._index_embedders is None:
            self._index_embedders = Embedders(self.ws.settings, notice=reporter.info)
        self._index_embedders.notice = reporter.info
        reporter.begin()
        report = index_repository(self.ws, reporter, rebuild=rebuild, embedders=self._index_embedders)
        reporter.finish()
        d = report.__dict__
        return ReindexResult(**{k: d[k] for k in ReindexResult.model_fields if k not in ("skipped",)},
                             skipped=len(report.skipped))

    # -- from the event loop --------------------------------------------------------------
    @staticmethod
    async def _run(pool: ThreadPoolExecutor, fn, *args):
        try:
            return await asyncio.wrap_future(pool.submit(fn, *args))
        except NoIndexError:
            raise ToolError("this repository has no index yet: call the reindex tool "
                            "(or run `codesearch index` in it)") from None
        except CodesearchError as error:
            raise ToolError(str(error)) from None
        except Exception as error:  # a damaged index, a full disk: say so, as the CLI does
            failure = user_error(error)
            if failure is None:
                raise
            raise ToolError(str(failure)) from None

    async def search(self, query: Query) -> SearchResult:
        return await self._run(self._search_thread, self._search, query)

    async def status(self) -> IndexStatus:
        return await self._run(self._search_thread, self._status)

    async def reindex(self, rebuild: bool, ctx: Context) -> ReindexResult:
        reporter = _Progress(ctx, asyncio.get_running_loop())
        return await self._run(self._index_thread, self._reindex, rebuild, reporter)

    def close(self) -> None:
        def close_session():
            if self._session is not None:
                self._session.close()
                self._session.embedders.close()
        self._search_thread.submit(close_session).result()
        if self._index_embedders is not None:
            self._index_thread.submit(self._index_embedders.close).result()
        self._search_thread.shutdown()
        self._index_thread.shutdown()


def build_server(ws: Workspace) -> tuple[MCPServer, CodeSearchTools]:
    tools = CodeSearchTools(ws)
    s = ws.settings
    server = MCPServer("codesearch", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")

    @server.tool(title="Search the code", annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    async def search(
        query: Annotated[str, Field(description="What the code should do, in English or Chinese, "
                                                "e.g. 'retry a request with exponential backoff'")],
        k: Annotated[int, Field(ge=1, le=100, description="At most this many hits")] = s.k,
        language: Annotated[str | list[str] | None, Field(description="Only these languages, e.g. python")] = None,
        path: Annotated[str | list[str] | None, Field(
            description="Only paths matching these gitignore-style patterns, relative to the repository root: "
                        "'src/**/*.py', 'retry.py' (any depth), '!tests/' leaves out")] = None,
        mode: Annotated[Literal["hybrid", "semantic", "lexical"], Field(
            description="hybrid (meaning and words), semantic (meaning) or lexical (words, BM25)")] = s.mode,
        threshold: Annotated[float, Field(ge=0, le=1, description="Leave out hits scoring below this; "
                                                                 "0 returns k hits whatever their score")] = s.threshold,
    ) -> SearchResult:
        """Find the functions and methods of this repository that do what `query` describes."""
        from .languages import LANGUAGES

        langs = [language] if isinstance(language, str) else list(language or [])
        bad = [lang for lang in langs if lang not in LANGUAGES]
        if bad:
            raise ToolError(f"unknown language {bad[0]!r}; known: {', '.join(sorted(LANGUAGES))}")
        paths = [path] if isinstance(path, str) else list(path or [])
        return await tools.search(Query(query, k, mode, langs, paths, s.translate, threshold))

    @server.tool(name="index_status", title="Index status",
                 annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    async def status() -> IndexStatus:
        """What is indexed (files, functions, languages), with which model, and how many files changed since."""
        return await tools.status()

    @server.tool(title="Update the index", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    async def reindex(
        ctx: Context,
        rebuild: Annotated[bool, Field(description="Start over and re-embed everything")] = False,
    ) -> ReindexResult:
        """Bring the index up to date with the files on disk: only changed files are read again and
        only changed functions re-embedded. Reports progress while it embeds."""
        return await tools.reindex(rebuild, ctx)

    return server, tools


def serve(repo: Path | None, http: bool = False, host: str = "127.0.0.1", port: int = 8765, warn=None,
          **flags) -> None:
    """Run the server until the client goes away (stdio) or Ctrl-C (HTTP)."""
    if http and host not in LOOPBACK:
        raise CodesearchError(f"--host {host}: the HTTP transport listens on loopback only "
                              f"({', '.join(LOOPBACK)}); it has no authentication")
    ws = open_workspace(repo, warn=warn, **flags)
    server, tools = build_server(ws)
    tools.warm_up()
    try:
        if http:
            server.run("streamable-http", host=host, port=port)
        else:
            server.run("stdio")
    finally:
        tools.close()
