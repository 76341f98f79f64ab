"""The wheel carries the Alembic migrations, and ``db upgrade`` works from an installed (non-editable) package.

The repository keeps ``migrations/`` beside ``collector/``; ``setup.py`` copies it into the wheel as
``collector/_migrations``, which ``collector.store.migrate.migrations_dir`` prefers. Before that, an
image built with ``pip install .`` failed ``db upgrade`` ("Alembic migrations not found").
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from collector.store.migrate import migrations_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    (path,) = out.glob("collapse_watch-*.whl")
    return path


def test_wheel_ships_every_migration(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"env.py", "script.py.mako"} | {
        f"versions/{p.name}" for p in (REPO / "migrations" / "versions").glob("*.py")
    }
    assert {f"collector/_migrations/{n}" for n in expected} <= names
    assert not [n for n in names if n.startswith("migrations/") or "__pycache__" in n]


def test_installed_wheel_migrates_a_database_without_the_checkout(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    db = tmp_path / "from-wheel.db"
    code = (
        "import collector, sys; from collector.store.migrate import migrations_dir, upgrade;"
        f"upgrade('sqlite:///{db}'); print(collector.__file__); print(migrations_dir())"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}  # the unpacked wheel, not this checkout
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    package, migrations = res.stdout.split()
    assert package.startswith(str(site)) and migrations == str(site / "collector" / "_migrations")
    engine = create_engine(f"sqlite:///{db}")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"alembic_version", "runs", "samples", "metric_values", "verdicts"} <= tables


def test_migrations_dir_prefers_the_packaged_copy_and_names_where_it_looked(tmp_path: Path) -> None:
    packaged, checkout = tmp_path / "collector" / "_migrations", tmp_path / "migrations"
    checkout.mkdir()
    (checkout / "env.py").write_text("")
    assert migrations_dir((packaged, checkout)) == checkout
    packaged.mkdir(parents=True)
    (packaged / "env.py").write_text("")
    assert migrations_dir((packaged, checkout)) == packaged
    with pytest.raises(FileNotFoundError) as err:
        migrations_dir((tmp_path / "a", tmp_path / "b"))
    assert str(tmp_path / "a") in str(err.value) and str(tmp_path / "b") in str(err.value)


def test_checkout_resolves_the_repository_migrations() -> None:
    assert migrations_dir() == REPO / "migrations"


def test_wheel_ships_the_typed_public_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "collapse_watch/__init__.py",
        "collapse_watch/py.typed",
        "collapse_watch/integrations/transformers.py",
        "collector/api.py",
        "collector/training/watch.py",
    }
    assert expected <= names, sorted(expected - names)
