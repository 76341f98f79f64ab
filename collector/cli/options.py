"""Options several commands share (one definition each, so their help never drifts apart)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

EmbeddingBackend = Annotated[
    str,
    typer.Option(
        help="Local embedding engine and precision: auto (OpenVINO bf16 where installed and native, "
        "else torch bf16/fp32), openvino, bf16 (torch) or fp32 (plain sentence-transformers)."
    ),
]
NoCache = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Do not read or write the local vector cache (vectors.sqlite in the user's cache dir).",
    ),
]
DatabaseUrl = Annotated[
    Optional[str],
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; else COLLAPSE_WATCH_DATABASE_URL, else sqlite:///collapse-watch.db.",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
Seed = Annotated[int, typer.Option(help="Bootstrap seed (reproducible).")]
Metrics = Annotated[
    Optional[str], typer.Option(help="Comma-separated metric names (default: the whole suite).")
]
NoEmbeddings = Annotated[
    bool, typer.Option("--no-embeddings", help="Skip the embedding model and its metrics.")
]
MaxScoredSamples = Annotated[
    Optional[int],
    typer.Option(
        min=10,  # the bound of the config's max_scored_samples
        help="Score at most N outputs of a stored run, the uniform sample its collector scores "
        "(default: the config's default max_scored_samples).",
        show_default=False,
    ),
]
ConfigFile = Annotated[Path, typer.Option("--config", "-c", help="The collector's YAML configuration.")]
WebConfigFile = Annotated[
    Optional[Path],
    typer.Option(
        "--web.config.file",
        "--web-config-file",
        help="Exporter-toolkit web config (TLS, basic_auth_users); overrides the config's web_config_file.",
        show_default=False,
    ),
]
