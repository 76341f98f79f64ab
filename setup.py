"""Only what pyproject.toml cannot say: ship the top-level ``migrations/`` inside the wheel.

The repository keeps Alembic's ``migrations/`` beside ``collector/`` (the layout is fixed); an
installed package has no repository, so the wheel carries a copy as ``collector/_migrations``,
which ``collector.store.migrate`` finds before it looks for a source checkout.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SHIPPED = ("env.py", "script.py.mako", "versions/*.py")


class BuildWithMigrations(build_py):
    """``build_py`` that also copies ``migrations/`` to ``collector/_migrations`` in the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install resolves the checkout's migrations/ itself
        target = Path(self.build_lib) / "collector" / "_migrations"
        for pattern in SHIPPED:
            for src in sorted(MIGRATIONS.glob(pattern)):
                dest = target / src.relative_to(MIGRATIONS)
                self.mkpath(str(dest.parent))
                self.copy_file(str(src), str(dest))


setup(cmdclass={"build_py": BuildWithMigrations})
