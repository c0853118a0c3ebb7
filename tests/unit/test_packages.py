"""Each package's public surface, and the promise that `import agent` stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

MODULES = [
    "agent", "agent.loop", "agent.parsing", "agent.policy", "agent.prompts", "agent.trajectory",
    "agent.cli", "agent.cli.app", "agent.cli.common", "agent.cli.run", "agent.cli.script",
    "agent.cli.info", "agent.runner", "agent.vault",
    "agent.grounding", "agent.grounding.model", "agent.grounding.dom",
    "tools", "tools.actions", "tools.keys", "tools.registry", "tools.executor", "tools.errors",
    "tools.coordinates", "tools.docstrings", "tools.schema", "tools.validation",
    "tools.browser", "tools.browser.executor", "tools.browser.dom", "tools.browser.input",
    "tools.browser.guard", "tools.browser.domains", "tools.browser.runtime", "tools.browser.session",
    "tools.browser.settle", "tools.browser.tabs",
    "tools.desktop", "tools.desktop.executor", "tools.desktop.screens", "tools.desktop.x11",
    "tools.desktop.xvfb", "tools.desktop.input", "tools.desktop.backends", "tools.dispatch",
    "model", "model.base", "model.scripted",
    "model.preprocess", "model.fast_tiling", "model.workshare", "model.internvl", "model.catalog",
    "model.tiny", "model.messages",
    "model.remote", "model.server", "model.server_limits", "model.server_runner", "model.server_http",
    "model.placement", "model.loading", "model.prompting",
    "model.generation", "model.architectures", "tasks",
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
