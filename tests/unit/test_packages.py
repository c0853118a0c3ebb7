"""Each package's public surface, and the promise that `import agent` stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

MODULES = [
    "agent", "agent.loop", "agent.parsing", "agent.policy", "agent.prompts", "agent.trajectory",
    "agent.parse_brackets", "agent.parse_reply",
    "agent.cli", "agent.cli.app", "agent.cli.common", "agent.cli.run", "agent.cli.script",
    "agent.cli.info", "agent.cli.resume", "agent.runner", "agent.vault", "agent.recovery",
    "agent.redaction",
    "agent.grounding", "agent.grounding.model", "agent.grounding.dom", "agent.grounding.describe",
    "agent.grounding.ocr", "agent.grounding.cascade", "agent.grounding.text_match",
    "tools", "tools.actions", "tools.keys", "tools.registry", "tools.executor", "tools.errors",
    "tools.coordinates", "tools.docstrings", "tools.schema", "tools.validation",
    "tools.browser", "tools.browser.executor", "tools.browser.dom", "tools.browser.input",
    "tools.browser.guard", "tools.browser.domains", "tools.browser.runtime", "tools.browser.session",
    "tools.browser.settle", "tools.browser.tabs", "tools.browser.hops", "tools.browser.redirects",
    "tools.desktop", "tools.desktop.executor", "tools.desktop.screens", "tools.desktop.x11",
    "tools.desktop.xvfb", "tools.desktop.input", "tools.desktop.backends", "tools.dispatch",
    "model", "model.base", "model.scripted",
    "model.preprocess", "model.fast_tiling", "model.workshare", "model.internvl", "model.catalog",
    "model.tiny", "model.messages",
    "model.remote", "model.server", "model.server_limits", "model.server_runner", "model.server_http",
    "model.placement", "model.loading", "model.prompting",
    "model.generation", "model.architectures", "model.cache", "tasks",
    "tasks.spec", "tasks.steps", "tasks.checks", "tasks.start", "tasks.serve", "tasks.launch",
    "tasks.yamlfile", "agent.task_run", "agent.script", "agent.cli.tasks", "tools.browser.text",
    "tasks.miniwob", "tasks.miniwob.catalog", "tasks.miniwob.env", "tasks.miniwob.reference",
    "agent.bench", "agent.bench.episodes", "agent.bench.instructions", "agent.bench.miniwob",
    "agent.bench.table", "agent.bench.grounding", "agent.grounding.dom_script", "tasks.grounding",
    "agent.parallel", "agent.bench.task_files", "agent.cli.bench",
    "tasks.grounding_synth",
    "agent.mcp", "agent.mcp.session", "agent.mcp.server", "agent.cli.mcp",
    "agent.tool_calls", "agent.outputs", "agent.parse_many", "tools.context",
    "agent.selection", "agent.critic", "model.server_logprobs",
]


@pytest.mark.parametrize("name", MODULES)
def test_every_name_in_all_exists(name):
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"


def test_importing_the_packages_loads_no_heavy_dependency():
    code = (
        "import sys, agent, tools, model, tasks, agent.cli, tools.browser, model.internvl\n"
        "heavy = ('torch', 'transformers', 'playwright', 'pyautogui', 'mss')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
