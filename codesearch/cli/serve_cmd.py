"""`codesearch serve`: an OpenAI-compatible embedding server (codesearch/serve.py)."""

from __future__ import annotations

import os

import click

from ..errors import CodesearchError
from .errors import say_error
from .options import device_option, model_option

KEY_VARIABLE = "CODESEARCH_API_KEY"


@click.command()
@model_option("The model to serve: a Hugging Face id in the local cache, a local folder, e5-small-code or "
              "e5-small (default: Qwen/Qwen3-Embedding-0.6B, or e5-small-code offline).")
@device_option("Where the model runs (default: auto: CUDA, else MPS, else the CPU).")
@click.option("--host", default=None, help="Address to listen on (default: 127.0.0.1, this machine only). Any other "
                                           "address needs a key in CODESEARCH_API_KEY.")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port (default: 8765; 0: any free port, printed when ready).")
@click.option("--served-model-name", "names", multiple=True, metavar="NAME",
              help="The model name requests may use (repeatable; default: the model's Hugging Face id).")
@click.option("--batch-tokens", type=click.IntRange(min=1), default=None,
              help="Most tokens the server embeds in one job, across concurrent requests.")
def serve(model, device, host, port, names, batch_tokens):
    """Serve embeddings over HTTP, OpenAI-compatible (POST /v1/embeddings).

    \b
      codesearch serve --model Qwen/Qwen3-Embedding-0.6B --device cuda --port 8765
      codesearch index ./repo --model Qwen/Qwen3-Embedding-0.6B --api-base http://gpu-box:8765/v1

    Clients send final text: the server adds no prompts (codesearch's client adds them).
    Listening beyond this machine (--host 0.0.0.0) needs CODESEARCH_API_KEY set to a secret;
    clients send it as a bearer token (codesearch reads the same variable). Ctrl-C lets the
    requests in flight finish, then exits.
    """
    from .. import serve as server
    from ..app import load_for_serving, machine_settings
    from ..embedders.models import served_name

    host = host or server.DEFAULT_HOST
    port = server.DEFAULT_PORT if port is None else port
    key = os.environ.get(KEY_VARIABLE) or None
    if key is None and not server.is_loopback(host):
        raise CodesearchError(f"--host {host} lets other machines in: set {KEY_VARIABLE} to a secret first (clients "
                              f"send it; codesearch's client reads the same variable), or listen on 127.0.0.1")
    settings = machine_settings(warn=say_error, model=model, device=device)
    server.say(f"loading model {settings.model or 'default'} ...")
    spec, backend = load_for_serving(settings, settings.model, warn=say_error)
    if not hasattr(backend, "embed_token_ids"):
        raise CodesearchError(f"the {backend.path} backend cannot serve token ids; use --device cpu or cuda")
    names = list(names) or [served_name(spec)]
    service = server.EmbeddingService(spec, backend, names + [spec.id, served_name(spec)], key=key,
                                      job_tokens=batch_tokens)
    line = server.warm(service)
    server.say(f"model {spec.id} ({service.dim} dims) on {backend.device}: {line}")

    def ready(url):
        server.say(f"serving {names[0]} at {url} (POST {url}/embeddings){'; key required' if key else ''}; "
                   f"Ctrl-C stops")

    try:
        stats = server.run_server(service, host, port, announce=ready)
    except OSError as error:
        raise CodesearchError(str(error)) from None
    finally:
        backend.close()
    server.say(f"stopped: {stats['requests']} requests, {stats['inputs']} inputs, {stats['tokens']} tokens")
