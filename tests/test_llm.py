"""The local SmolLM2 model: GGUF -> HF checkpoint conversion, and seeded batched sampling."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from collector.llm import generate, is_complete, packaged_gguf, smollm2_checkpoint


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return smollm2_checkpoint()  # the shared cache: converted once per machine


def test_packaged_gguf_is_found() -> None:
    gguf = packaged_gguf()
    assert gguf.is_file() and gguf.read_bytes()[:4] == b"GGUF"


def test_partial_directory_is_not_complete(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 100)
    assert not is_complete(tmp_path)


@pytest.mark.slow
def test_conversion_replaces_a_killed_attempt(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "config.json").write_text("{}")  # what a killed, non-atomic conversion might leave
    (target / "junk.bin").write_bytes(b"x")
    out = smollm2_checkpoint(target)
    assert out == target and is_complete(target)
    assert not (target / "junk.bin").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp directory left behind
    t0 = time.perf_counter()
    assert smollm2_checkpoint(target) == target
    assert time.perf_counter() - t0 < 1.0


def test_checkpoint_loads_without_gguf(checkpoint: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((checkpoint / "config.json").read_text())
    assert "quantization_config" not in config
    tok = AutoTokenizer.from_pretrained(str(checkpoint))
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint))
    assert 100e6 < sum(p.numel() for p in model.parameters()) < 200e6


@pytest.mark.slow
def test_generate_is_reproducible_and_nonempty(checkpoint: Path) -> None:
    prompts = ["Write a haiku about rain."]
    a = generate(checkpoint, prompts, k=2, temperature=1.0, max_new_tokens=8, seed=7)
    b = generate(checkpoint, prompts, k=2, temperature=1.0, max_new_tokens=8, seed=7)
    c = generate(checkpoint, prompts, k=2, temperature=1.0, max_new_tokens=8, seed=8)
    assert a == b
    assert [len(x) for x in a] == [2]
    assert all(s.strip() for x in a for s in x)
    assert a != c
    assert "<|im" not in " ".join(s for x in a for s in x)  # special tokens are stripped


def test_generate_rejects_bad_arguments(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="k >= 1"):
        generate(checkpoint, ["x"], k=0)
    with pytest.raises(ValueError, match="at least one prompt"):
        generate(checkpoint, [], k=1)
