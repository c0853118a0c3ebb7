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
) -> None:
    """Serve a local model over an OpenAI-compatible API (/v1/chat/completions, /v1/models)."""
    from model.internvl import InternVLModel
    from model.server import serve as serve_model

    quiet_transformers()
    serve_model(InternVLModel.from_pretrained(model), host=host, port=port)


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
