"""The metric package as it was before the near-linear across-scope intervals, importable side by side.

``load_previous()`` writes ``collector/metrics`` of ``PREVIOUS_COMMIT`` (read with ``git show``) into
a temporary package ``previous_metrics`` and imports it, so a benchmark or a check can run the
previous implementation and the current one in one process on the same corpus.  Needs the git
history of this checkout.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS_COMMIT = "94c12c02ba3c1f600f8db8c487623b7fb122a62e"  # main before issue #13
PACKAGE = "previous_metrics"


def load_previous(commit: str = PREVIOUS_COMMIT) -> ModuleType:
    """``collector.metrics.suite`` of ``commit`` (its ``lexical`` module is ``.lexical``)."""
    if f"{PACKAGE}.suite" in sys.modules:
        return sys.modules[f"{PACKAGE}.suite"]
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", commit, "collector/metrics/"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    target = Path(tempfile.mkdtemp(prefix="cw-previous-")) / PACKAGE
    target.mkdir()
    for name in names:
        if not name.endswith(".py"):
            continue
        source = subprocess.run(
            ["git", "show", f"{commit}:{name}"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        (target / Path(name).name).write_text(source.replace("collector.metrics", PACKAGE), encoding="utf-8")
    sys.path.insert(0, str(target.parent))
    importlib.import_module(f"{PACKAGE}.lexical")
    return importlib.import_module(f"{PACKAGE}.suite")
