"""`codesearch mcp` as a coding agent meets it: a real subprocess driven by the official MCP
SDK's own clients (stdio, and streamable HTTP on loopback), with the bundled e5-small."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio  # installed with mcp
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parent.parent
NEW_FUNCTION = '''

def median_of(values):
    """The middle value of a list of numbers (the mean of the two middle ones for even counts)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
'''


def server_env() -> dict:
    """This interpreter's view of the project (PYTHONPATH, the private cache, offline) for the server."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["CODESEARCH_MODEL"] = "e5-small"  # the model of the index `reindex` creates
    return env


@pytest.fixture
def repo(tmp_path, e5_spec) -> Path:
    """A plain folder holding the Python fixture package (no index yet)."""
    target = tmp_path / "shop"
    shutil.copytree(ROOT / "fixtures" / "python", target)
    return target


def params(repo: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "codesearch.cli", "mcp", "--repo", str(repo)],
                                 env=server_env(), cwd=str(repo))


def test_tools_search_status_and_reindex_over_stdio(repo):
    progress: list[tuple[float, float | None]] = []

    async def on_progress(value, total, message):
        progress.append((value, total))

    async def session_run():
        async with stdio_client(params(repo)) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {t.name: t for t in (await session.list_tools()).tools}
                assert set(tools) == {"search", "index_status", "reindex"}
                for t in tools.values():
                    assert t.input_schema["type"] == "object" and t.output_schema["type"] == "object"
                assert {"query", "k", "language", "path", "mode", "threshold"} <= set(tools["search"].input_schema["properties"])
                hit_props = tools["search"].output_schema["$defs"]["SearchHit"]["properties"]
                assert {"path", "start_line", "end_line", "qualname", "language", "score", "snippet"} <= set(hit_props)

                status = (await session.call_tool("index_status", {})).structured_content
                assert status["indexed"] is False
                before = await session.call_tool("search", {"query": "retry with backoff"})
                assert before.is_error and "reindex" in before.content[0].text

                built = await session.call_tool("reindex", {}, progress_callback=on_progress)
                assert not built.is_error, built.content
                assert built.structured_content["units"] > 5 and built.structured_content["model"] == "e5-small"
                assert progress and progress[-1][0] == progress[-1][1]  # ends complete
                assert [v for v, _ in progress] == sorted({v for v, _ in progress})  # strictly increasing

                for question in ("retry a call with exponential backoff on transient errors", "失败后按指数退避重试调用"):
                    result = await session.call_tool("search", {"query": question, "k": 3})
                    assert not result.is_error, result.content
                    hits = result.structured_content["hits"]
                    assert hits[0]["qualname"] == "Backoff.call", (question, hits)
                    top = hits[0]
                    assert top["path"] == "shoptools/retry.py" and top["abs_path"] == str(repo / "shoptools/retry.py")
                    assert top["start_line"] <= top["line"] <= top["end_line"] and "def call" in top["snippet"]
                    assert 0 < top["score"] <= 1

                only_go = await session.call_tool("search", {"query": "retry", "language": "go"})
                assert only_go.structured_content["hits"] == []
                unknown = await session.call_tool("search", {"query": "retry", "language": "cobol"})
                assert unknown.is_error and "unknown language" in unknown.content[0].text

                status = (await session.call_tool("index_status", {})).structured_content
                assert status["indexed"] and status["model"] == "e5-small" and status["changed_since"] == 0

                # an edit, seen by index_status, picked up by reindex, found by the warm session
                with open(repo / "shoptools" / "cache.py", "a", encoding="utf-8") as f:
                    f.write(NEW_FUNCTION)
                status = (await session.call_tool("index_status", {})).structured_content
                assert status["changed_since"] == 1
                progress.clear()
                again = await session.call_tool("reindex", {}, progress_callback=on_progress)
                assert again.structured_content["files_parsed"] == 1
                assert 1 <= again.structured_content["chunks_embedded"] <= 3  # only what changed
                found = await session.call_tool("search", {"query": "middle value of a list of numbers", "k": 3})
                assert found.structured_content["hits"][0]["qualname"] == "median_of"

    anyio.run(session_run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streamable_http_on_loopback(repo):
    from mcp.client.streamable_http import streamable_http_client

    env = server_env()
    subprocess.run([sys.executable, "-m", "codesearch.cli", "index", str(repo), "-q"], env=env, check=True,
                   capture_output=True)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "codesearch.cli", "mcp", "--repo", str(repo), "--http",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)

        async def session_run():
            async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    names = {t.name for t in (await session.list_tools()).tools}
                    assert names == {"search", "index_status", "reindex"}
                    result = await session.call_tool("search", {"query": "读取CSV文件并按某一列排序", "k": 2})
                    assert result.structured_content["hits"][0]["qualname"] == "read_sorted_rows"

        anyio.run(session_run)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_http_refuses_addresses_other_than_loopback(tmp_path):
    p = subprocess.run([sys.executable, "-m", "codesearch.cli", "mcp", "--repo", str(tmp_path), "--http",
                        "--host", "0.0.0.0"], env=server_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: --host 0.0.0.0") and "loopback" in p.stderr
