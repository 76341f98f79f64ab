"""The ``openai`` embedding backend: faults on a real loopback HTTP server, and a torch-free import.

Answers come from the local all-MiniLM-L6-v2 (the real model, in this process) behind a loopback
HTTP server that speaks ``/v1/embeddings``, so batching, ordering, retries and errors are
exercised on real vectors; the server only adds the faults a real server cannot produce on demand
(a 503 with Retry-After, a malformed body, a short answer).  tests/test_embedding_server.py runs
the backend against a real embedding server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from collector.embeddings import Embedder
from collector.remote_embeddings import EmbeddingError, RemoteEncoder, embeddings_url
from tests.http_fixtures import LoopbackServer

TEXTS = [
    "The lighthouse keeper found a bottle on the rocks.",
    "A recipe for bread needs flour, water, salt and time.",
    "",
    "Photosynthesis turns light into chemical energy.",
    "The lighthouse keeper found a bottle on the rocks.",
    "Écrire un poème sur la mer, s'il vous plaît.",
    "def add(a, b): return a + b",
]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local() -> Embedder:
    emb = Embedder(backend="fp32")
    emb.embed(["warm-up"])  # the model loads before the first request, not inside its timeout
    return emb


def _answer(local: Embedder, body: bytes) -> bytes:
    req = json.loads(body)
    vecs = local.embed(req["input"])
    rows = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vecs)]
    return json.dumps({"object": "list", "model": req["model"], "data": rows[::-1]}).encode()  # any order


@pytest.fixture
def server(local: Embedder) -> Iterator[LoopbackServer]:
    faults: list[tuple[int, dict[str, str], bytes]] = []

    def handle(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path != "/v1/embeddings":
            return 404, {}, b"not found"
        if faults:
            return faults.pop(0)
        return 200, {"Content-Type": "application/json"}, _answer(local, body)

    s = LoopbackServer(handle)
    s.faults = faults  # type: ignore[attr-defined]
    yield s
    s.close()


def test_url() -> None:
    assert embeddings_url("http://h:1") == "http://h:1/v1/embeddings"
    assert embeddings_url("http://h:1/v1/") == "http://h:1/v1/embeddings"


def test_batches_in_order_and_equal_to_local(server, local) -> None:
    enc = RemoteEncoder(server.base_url, "all-MiniLM-L6-v2", batch_size=2, concurrency=3)
    emb = Embedder(encoder=enc)
    got = emb.embed(TEXTS)
    assert got.shape == (len(TEXTS), 384)
    assert server.n_requests == 3  # 6 distinct texts in batches of 2; the repeat is cached
    want = local.embed(TEXTS)
    assert float(np.min(np.sum(got * want, axis=1))) >= 0.9999
    ident = emb.identity
    assert (ident.backend, ident.model, ident.dimension, ident.normalised) == (
        "openai",
        "all-MiniLM-L6-v2",
        384,
        True,
    )
    assert ident != Embedder(backend="fp32").identity
    enc.close()


def test_retries_503_after_retry_after_then_succeeds(server) -> None:
    server.faults.append((503, {"Retry-After": "0"}, b"overloaded"))
    enc = RemoteEncoder(server.base_url, "m", max_retries=2, batch_size=10)
    assert enc.encode(TEXTS[:3]).shape == (3, 384)
    assert server.n_requests == 2


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ((200, {}, b"{not json"), "malformed JSON"),
        (
            (200, {}, json.dumps({"data": [{"index": 0, "embedding": [0.1]}]}).encode()),
            "expected 3 embeddings",
        ),
        ((400, {}, b"input too long"), r"HTTP 400 .* after 0 retries: input too long"),
    ],
)
def test_bad_answers_raise_naming_url_and_batch(server, fault, message) -> None:
    server.faults.append(fault)
    enc = RemoteEncoder(server.base_url, "m", max_retries=3, batch_size=10)
    with pytest.raises(EmbeddingError, match=message) as info:
        enc.encode(TEXTS[:3])
    assert server.base_url in str(info.value) and "batch 0" in str(info.value)


def test_unreachable_server_fails_after_retries(server) -> None:
    url = server.base_url
    server.close()
    enc = RemoteEncoder(url, "m", max_retries=1, backoff_base=0.01)
    with pytest.raises(EmbeddingError, match=r"connection error .* after 1 retries"):
        enc.encode(["x"])


def test_api_key_is_sent_and_scrubbed(server, monkeypatch) -> None:
    monkeypatch.setenv("CW_TEST_EMBED_KEY", "sekrit-123")
    server.faults.append((401, {}, b"bad key sekrit-123"))
    enc = RemoteEncoder(server.base_url, "m", api_key_env="CW_TEST_EMBED_KEY", max_retries=0)
    with pytest.raises(EmbeddingError) as info:
        enc.encode(["x"])
    assert "sekrit-123" not in str(info.value) and "***" in str(info.value)


@pytest.mark.slow
def test_package_imports_and_remote_backend_works_without_torch(server) -> None:
    """In a fresh interpreter where torch, sentence-transformers, transformers and openvino cannot be
    imported."""
    code = textwrap.dedent(
        f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "sentence_transformers", "transformers", "openvino"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import collector.cli, collector.metrics.suite
        from collector.embeddings import Embedder
        from collector.remote_embeddings import RemoteEncoder
        emb = Embedder(encoder=RemoteEncoder({server.base_url!r}, "all-MiniLM-L6-v2"))
        print(emb.embed(["a", "b c"]).shape, emb.identity.label())
        try:
            Embedder().embed(["x"])
        except RuntimeError as e:
            print("local:", e)
        assert "torch" not in sys.modules
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "(2, 384) openai:all-MiniLM-L6-v2:384:l2" in out.stdout
    assert "local: the local embedding backend needs torch" in out.stdout


def test_config_selects_the_remote_backend(server) -> None:
    from collector.config import Config
    from collector.remote_embeddings import make_embedder

    cfg = Config.model_validate(
        {"embedding_server": {"base_url": server.base_url, "model": "all-MiniLM-L6-v2"}}
    )
    emb = make_embedder(cfg.embedding_model, cfg.embedding_server)
    assert emb.embed(["a b"]).shape == (1, 384) and emb.identity.backend == "openai"
    assert make_embedder("default", None).encoder is None
    with pytest.raises(ValueError, match=r"embedding_server\.base_url"):
        Config.model_validate({"embedding_server": {"base_url": "nope", "model": "m"}})
