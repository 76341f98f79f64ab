"""The command line's layout (issue #21): one module per command group, each registering thin
commands, and a start-up that loads no metric, store or model code (``--version`` and ``--help``
answer in a fraction of a second)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import collector.cli
from collector.cli import app

CLI = Path(collector.cli.__file__).parent
# What a command module may import at module level: typer, rich's console pieces, the standard
# library, the floor and the CLI's own light modules (everything else inside the command).
LIGHT = {
    "__future__",
    "typer",
    "rich.text",
    "collector.cli",
    "collector.cli.app",
    "collector.cli.options",
    "collector.gate",
    "collector.render",
    "collector.metrics.defaults",
    "collector.vocabulary",
}
HEAVY = ("numpy", "scipy", "sqlalchemy", "pydantic", "yaml", "collector.store", "collector.metrics.suite")


def test_every_command_is_registered_in_its_group_module() -> None:
    groups = {
        "gate": {"score", "compare"},
        "watch": {"collect", "run", "serve-metrics"},
        "history": {"history", "report"},
        "demo": {"demo"},
    }
    by_module = {
        (c.name or c.callback.__name__): c.callback.__module__.rsplit(".", 1)[-1]  # type: ignore[union-attr]
        for c in app.registered_commands
    }
    assert by_module == {name: group for group, names in groups.items() for name in names}
    assert {g.name for g in app.registered_groups} == {"db", "dashboards", "config"}


def test_command_modules_import_only_light_modules_at_module_level() -> None:
    for path in sorted(CLI.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only; `if TYPE_CHECKING:` blocks are not run
            if isinstance(node, ast.ImportFrom) and node.module == "collector":  # a submodule each
                names = [f"collector.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert name in LIGHT or top in sys.stdlib_module_names, f"{path.name} imports {name}"


def test_start_up_loads_no_metric_store_or_model_code() -> None:
    code = "import sys, collector.cli; print(' '.join(m for m in sys.modules if m.startswith(%r)))"
    for prefix in HEAVY:
        out = subprocess.run(
            [sys.executable, "-c", code % prefix], capture_output=True, text=True, check=True
        ).stdout.split()
        assert out == [], f"importing collector.cli loads {out}"
