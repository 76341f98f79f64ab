"""The environment variables the collector reads: named and read in collector/environment.py only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector import environment
from collector.database_url import redact_url, resolve_url
from collector.vocabulary import DATABASE_URL_ENV, DEFAULT_DATABASE_URL

COLLECTOR = Path(__file__).resolve().parents[1] / "collector"
# A read of the process environment: os.environ[...] / .get(...) / getenv(...), not a setdefault.
_READ = re.compile(r"os\.environ(?:\.get\(|\[)|os\.getenv\(|environ\.get\(")


def _environment_reads(root: Path) -> list[str]:
    """Lines outside environment.py that read one of the collector's variables."""
    own = [environment.MODEL_CACHE_ENV, environment.VECTOR_CACHE_DIR_ENV, environment.VECTOR_CACHE_MAX_ENV]
    names = [*own, environment.XDG_CACHE_HOME_ENV, "COLLAPSE_WATCH_", "DATABASE_URL_ENV", "ENV_VAR"]
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "environment.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _READ.search(line) and any(n in line for n in names):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_the_collectors_own_variables_are_read_only_in_the_environment_module() -> None:
    assert _environment_reads(COLLECTOR) == []


def test_an_empty_variable_reads_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, "")
    monkeypatch.setenv(environment.VECTOR_CACHE_DIR_ENV, "")
    assert environment.database_url() is None and environment.vector_cache_dir() is None
    assert resolve_url(None) == DEFAULT_DATABASE_URL
    monkeypatch.setenv("CW_TEST_KEY", " k \n")
    assert environment.named("CW_TEST_KEY") == " k \n"  # as set: credentials strip by their own rule


def test_the_database_url_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://u:pw@db/x")
    assert resolve_url(None) == "postgresql://u:pw@db/x"
    assert resolve_url("sqlite:///given.db") == "sqlite:///given.db"
    assert redact_url(resolve_url(None)) == "postgresql://u@db/x"


def test_the_store_engine_keeps_its_names_for_the_one_rule() -> None:
    from collector.store import engine

    assert engine.resolve_url is resolve_url and engine.redact_url is redact_url
    assert (engine.ENV_VAR, engine.DEFAULT_URL) == (DATABASE_URL_ENV, DEFAULT_DATABASE_URL)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", None), (" 500 ", 500), ("007", 7), ("9" * 5000, 10**18)],
)
def test_the_cache_size_variable(monkeypatch: pytest.MonkeyPatch, raw: str, expected: int | None) -> None:
    from collector.store import vector_cache

    monkeypatch.setenv(environment.VECTOR_CACHE_MAX_ENV, raw)
    assert vector_cache.max_vectors_from_env() == (expected or vector_cache.DEFAULT_MAX_VECTORS)


@pytest.mark.parametrize("raw", ["lots", "0", "-5", "1e6", "١٢", "x" * 10_000])
def test_a_bad_cache_size_is_named_and_never_echoed_whole(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    from collector.store import vector_cache

    monkeypatch.setenv(environment.VECTOR_CACHE_MAX_ENV, raw)
    with pytest.raises(ValueError, match=environment.VECTOR_CACHE_MAX_ENV) as caught:
        vector_cache.max_vectors_from_env()
    assert len(str(caught.value)) < 150


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("7", 7),
        ("007", 7),
        ("0", 0),
        ("999", 999),
        ("1000", 1000),
        ("1001", 1000),
        ("9" * 5000, 1000),
        ("", None),
        ("1e3", None),
        ("١٢", None),
        ("-1", None),
    ],
)
def test_whole_number_is_ascii_digits_capped(raw: str, expected: int | None) -> None:
    assert environment.whole_number(raw, cap=1000) == expected
