"""`internvl-agent serve`, `report` and `models`: serving, reading runs, the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli.app import app
from agent.cli.common import MODEL_HELP, quiet_transformers
from tools.errors import AgentError

__all__ = ["models", "report", "serve"]


@app.command()
def serve(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    host: Annotated[str, typer.Option(help="Address to listen on; the server has no authentication.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body (413 above).")] = 16,
    max_prompt_tokens: Annotated[int | None, typer.Option(
        min=1, help="Longest prompt, images included (400 above). Default: the model's context.")] = None,
    max_image_pixels: Annotated[int, typer.Option(
        min=1, help="Most pixels in one image, read from its header before decoding (400 above).",
    )] = 4096 * 4096,
    max_queue: Annotated[int, typer.Option(
        min=0, help="Requests that may wait while one runs; more get 503 with Retry-After.")] = 4,
    request_timeout: Annotated[float, typer.Option(
        min=0.001, help="Seconds a request may take, waiting included (504 after).")] = 300.0,
    header_timeout: Annotated[float, typer.Option(
        min=0.001, help="Seconds for a request's line and headers to arrive.")] = 10.0,
    body_timeout: Annotated[float, typer.Option(
        min=0.001, help="Seconds for a request's body to arrive.")] = 60.0,
    keep_alive: Annotated[float, typer.Option(
        min=0.001, help="Seconds an idle connection stays open.")] = 5.0,
    max_connections: Annotated[int, typer.Option(min=1, help="Open connections at most (503 above).")] = 64,
    shutdown_grace: Annotated[float, typer.Option(
        min=0, help="On SIGTERM, seconds the request in flight may go on before it is stopped.")] = 2.0,
) -> None:
    """Serve a local model over an OpenAI-compatible API (/v1/chat/completions, /v1/models),
    with limits that bad or slow requests cannot get past."""
    from model.internvl import InternVLModel
    from model.server import ServerLimits
    from model.server import serve as serve_model

    limits = ServerLimits(
        max_body_bytes=int(max_body_mb * 2**20), max_prompt_tokens=max_prompt_tokens,
        max_image_pixels=max_image_pixels, max_queue=max_queue, request_timeout_s=request_timeout,
        header_timeout_s=header_timeout, body_timeout_s=body_timeout, keep_alive_s=keep_alive,
        max_connections=max_connections, shutdown_grace_s=shutdown_grace,
    )
    quiet_transformers()
    serve_model(InternVLModel.from_pretrained(model), host=host, port=port, limits=limits)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, such as runs/20261126-101500-ab12cd.")],
) -> None:
    """Write RUN_DIR/report.html: each step's screenshot, the model's reply and what ran."""
    from agent.report import write_report

    if not (run_dir / "steps.jsonl").is_file():
        raise AgentError(f"{run_dir} holds no run (no steps.jsonl): give a directory under runs/")
    print(write_report(run_dir))


@app.command()
def models() -> None:
    """List the InternVL3 checkpoints: parameters, and the memory their weights need."""
    from model.catalog import describe_models

    rows = [("name", "checkpoint", "params", "bf16 GiB", "8-bit GiB", "4-bit GiB", "here")]
    for info in describe_models():
        here = "yes" if _is_cached(info.name) else "no"
        rows.append((info.name, info.hub_id or "-", f"{info.params / 1e9:.2f}B", f"{info.gib_bf16:.1f}",
                     f"{info.gib_8bit:.1f}", f"{info.gib_4bit:.1f}", here))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:  # plain text: it has to survive pipes and narrow terminals
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs]
        print("  ".join(cells))
    print("Memory is for the weights alone; the KV cache and activations come on top.")


def _is_cached(name: str) -> bool:
    from model.catalog import resolve_model

    try:
        resolve_model(name)
    except AgentError:
        return False
    return True
