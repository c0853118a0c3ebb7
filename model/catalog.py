"""Model names -> checkpoint directories on this machine.

`resolve_model` accepts what a user types after `--model`: "tiny", a short name such
as "internvl3-2b", a hub id such as "OpenGVLab/InternVL3-2B-hf", or a folder. It only
ever looks at the local disk (the Hugging Face cache included); it never downloads.
"""

from __future__ import annotations

import re
from pathlib import Path

from tools.errors import ModelUnavailable

__all__ = ["CHECKPOINTS", "TINY", "hub_id", "resolve_model"]

TINY = "tiny"

# The native transformers ("-hf") checkpoints of InternVL3, by short name.
CHECKPOINTS: dict[str, str] = {
    f"internvl3-{size.lower()}": f"OpenGVLab/InternVL3-{size}-hf"
    for size in ("1B", "2B", "8B", "9B", "14B", "38B", "78B")
}

# owner/name as the hub spells it; anything else is taken for a path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TRY = "pass --model PATH to a downloaded checkpoint, or use --model tiny"


def hub_id(name: str) -> str | None:
    """The hub id for a short name or a hub id (case-insensitive for short names), else None."""
    if name.lower() in CHECKPOINTS:
        return CHECKPOINTS[name.lower()]
    return name if _HUB_ID.match(name) else None


def resolve_model(name_or_path: str) -> Path:
    """The local checkpoint directory for `name_or_path`, or ModelUnavailable saying what to pass."""
    if name_or_path == TINY:
        from model.tiny import tiny_checkpoint

        return tiny_checkpoint()

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelUnavailable(
                f"{path} is not a transformers checkpoint (it has no config.json): pass the folder "
                "that holds config.json and the *.safetensors weights, or use --model tiny"
            )
        return path
    if path.exists():
        raise ModelUnavailable(f"{path} is a file, not a checkpoint folder: {_TRY}")

    repo = hub_id(name_or_path)
    if repo is None:
        if "/" in name_or_path or name_or_path.startswith((".", "~")):
            raise ModelUnavailable(f"there is no checkpoint folder {path} on this machine: {_TRY}")
        names = ", ".join(CHECKPOINTS)
        raise ModelUnavailable(
            f"model {name_or_path!r} is not a folder here, a known name ({names}) or a hub id: {_TRY}"
        )
    cached = _cached_snapshot(repo)
    if cached is None:
        raise ModelUnavailable(f"model {repo} is not on this machine and the hub cannot be reached: {_TRY}")
    return cached


def _cached_snapshot(repo: str) -> Path | None:
    """The snapshot folder of `repo` in the local Hugging Face cache, if it holds a config."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # transformers depends on it, so this is a broken install
        return None
    try:
        folder = Path(snapshot_download(repo, local_files_only=True))
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError), or not a valid hub id
        return None
    return folder if (folder / "config.json").is_file() else None
