"""The examples in the API's docstrings and in docs/python.md run, and give what they show."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import collapse_watch
from collector import api

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"


@pytest.mark.parametrize("module", [collapse_watch, api], ids=lambda m: m.__name__)
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def test_docs_python_md_examples() -> None:
    # only the ```python blocks written as sessions (>>>) run; the Trainer snippet is prose-only
    result = doctest.testfile(str(DOC), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0
