"""What the agent is asked to do. For now: the bundled example pages in tasks/examples."""

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "examples"

__all__ = ["EXAMPLES"]
