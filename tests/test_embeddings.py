"""The Embedder: offline model, normalised rows, the text-hash cache, and the bf16 backend's accuracy."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from collector.embeddings import Embedder, load_model, resolve_model_path, text_key
from collector.store.text import encode_text
from tests.embedding_fixture import load_samples

TEXTS = [o for _, o in load_samples(24)]


class CountingEmbedder(Embedder):
    """The real model, recording every text it is asked to encode."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[str] = []

    def _encode(self, texts):
        self.seen.extend(texts)
        return super()._encode(texts)


def test_rows_are_normalised_float32_in_input_order():
    emb = Embedder().embed(TEXTS)
    assert emb.shape == (len(TEXTS), 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    rev = Embedder().embed(TEXTS[::-1])
    assert np.allclose(rev[::-1], emb, atol=1e-6)


def test_repeated_texts_are_embedded_once():
    e = CountingEmbedder()
    texts = [TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[2], TEXTS[1], TEXTS[0]]
    emb = e.embed(texts)
    assert sorted(e.seen) == sorted({TEXTS[0], TEXTS[1], TEXTS[2]})
    assert np.array_equal(emb[0], emb[2]) and np.array_equal(emb[1], emb[4])
    e.embed(texts[:3])  # all cached now
    assert len(e.seen) == 3 and e.n_encoded == 3


def test_persistent_cache_survives_a_new_embedder(tmp_path):
    first = CountingEmbedder(cache_dir=tmp_path, backend="bf16")
    a = first.embed(TEXTS[:5])
    second = CountingEmbedder(cache_dir=tmp_path, backend="bf16")
    b = second.embed([*TEXTS[:5], TEXTS[6]])
    assert second.seen == [TEXTS[6]]
    assert np.array_equal(a, b[:5])
    other_backend = CountingEmbedder(cache_dir=tmp_path, backend="fp32")
    other_backend.embed(TEXTS[:1])
    assert other_backend.seen == [TEXTS[0]]  # keyed by model id + backend


def test_fast_backend_stays_close_to_plain_encode():
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu").encode(
        TEXTS, batch_size=32, normalize_embeddings=True
    )
    fast = Embedder(backend="bf16").embed(TEXTS)
    cos = np.sum(plain * fast, axis=1)
    assert cos.min() >= 0.99, cos.min()
    assert np.allclose(Embedder(backend="fp32").embed(TEXTS), plain, atol=1e-5)


def test_progress_reports_done_and_total():
    calls: list[tuple[int, int]] = []
    Embedder(batch_size=2).embed([*TEXTS[:10], TEXTS[0]], progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 10) and calls[-1] == (10, 10)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_model_loads_once_and_bad_input_is_named(tmp_path):
    assert load_model() is load_model()
    assert Embedder().embed([]).shape == (0, 384)
    with pytest.raises(TypeError, match="item 1"):
        Embedder().embed(["ok", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="backend"):
        load_model(backend="int8")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="cannot load embedding model"):
        load_model(str(tmp_path / "missing"))
    # the key is the history database's texts.sha256, also for a log line with escaped bad bytes
    assert text_key("é") == "4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c"
    escaped = b"caf\xe9 ok".decode("utf-8", "surrogateescape")
    assert text_key(escaped) == encode_text(escaped, "t").sha256 == hashlib.sha256(b"caf\xe9 ok").hexdigest()


def test_openvino_backend_matches_fp32_and_is_its_own_identity():
    """The default engine where OpenVINO is installed (issue #25): within cosine 0.999 of plain
    sentence-transformers fp32 on real outputs, an empty text and one past the 256-token limit."""
    pytest.importorskip("openvino")
    from sentence_transformers import SentenceTransformer

    texts = [*TEXTS, "", "word " * 600, "x"]
    plain = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu").encode(
        texts, batch_size=32, normalize_embeddings=True
    )
    fast = Embedder(backend="openvino", batch_size=7).embed(texts)
    cos = np.sum(plain * fast, axis=1)
    assert cos.min() >= 0.999, cos.min()
    assert Embedder().backend == "openvino"  # auto picks it
    kinds = {Embedder(backend=b).backend_kind for b in ("openvino", "bf16", "fp32")}
    assert len(kinds) == 3 and "local-torch-fp32" in kinds
    assert Embedder(backend="openvino").identity.label().startswith("local-openvino-")


def test_local_vector_cache_is_bounded_least_recently_used_first(tmp_path):
    from collector.store.vector_cache import LocalVectorCache

    cache = LocalVectorCache(tmp_path / "v.sqlite", "local-test", "m", max_vectors=10)
    rng = np.random.default_rng(0)
    raw = {f"k{i:02d}": rng.normal(size=4).astype(np.float32) for i in range(10)}
    vecs = {k: v / np.linalg.norm(v) for k, v in raw.items()}  # a local model's rows: unit length
    cache.put_many(dict(list(vecs.items())[:5]))
    cache.put_many(dict(list(vecs.items())[5:]))
    assert len(cache) == 10
    assert set(cache.get_many(["k00", "k01"])) == {"k00", "k01"}  # touched: now the most recent
    cache.put_many({"k10": vecs["k00"]})  # 11 > 10: pruned to 9, the least recently used first
    left = set(cache.get_many([*vecs, "k10"]))
    assert len(left) == 9 and {"k00", "k01", "k10"} <= left
    assert not {"k02", "k03"} & left
    got = cache.get_many(["k00"])["k00"]
    assert np.array_equal(got, vecs["k00"].astype(np.float16).astype(np.float32))
    cache.close()


def test_ctrl_c_while_openvino_embeds_ends_the_process_cleanly():
    """KeyboardInterrupt between two batches with requests still running (Ctrl-C mid-`compare`):
    the process ends as interrupted, not by SIGABRT from a request calling back into an
    interpreter shutting down (exit 134 before; found by the #25 re-attack)."""
    pytest.importorskip("openvino")
    import signal
    import subprocess
    import sys

    code = """
from collector.embeddings import load_model
import torch, sentence_transformers, sqlalchemy  # much to tear down: the requests outlive the loop
model = load_model(backend="openvino")
real = model.tokenizer

class Stops:
    calls = 0
    def encode_batch(self, texts):
        Stops.calls += 1
        if Stops.calls == 10:
            raise KeyboardInterrupt
        return real.encode_batch(texts)

model.tokenizer = Stops()
model.encode(["a longer text to embed, word after word, " * 30 + str(i) for i in range(640)], batch_size=32)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGINT, (proc.returncode, proc.stderr[-2000:])
    assert "FATAL" not in proc.stderr
