"""The transformers source on a tiny random checkpoint built in the test (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import Decoding, TransformersSourceConfig
from collector.sources.base import SampleRequest, SourceError
from collector.sources.transformers import TransformersSource, cut_at_stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-llm")
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = "the cat sat on a mat dog ran far away tell me story about"
    tok.train_from_iterator(
        [corpus] * 3, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "<eos>"])
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="<eos>"
    )
    fast.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    fast.save_pretrained(path)
    cfg = LlamaConfig(
        vocab_size=fast.vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=None,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def test_samples_every_request_reproducibly(checkpoint: Path) -> None:
    src = TransformersSource(
        TransformersSourceConfig(type="transformers", path=str(checkpoint), batch_size=3), version="tiny"
    )
    reqs = [SampleRequest(f"p{i}", "tell me a story about the cat", j) for i in range(2) for j in range(2)]
    dec = Decoding(temperature=1.0, max_tokens=6, seed=7)
    progress: list[int] = []
    first = list(src.sample(reqs, dec, progress=lambda d, t: progress.append(d)))
    again = list(src.sample(reqs, dec))
    assert [(o.prompt_id, o.sample_index) for o in first] == [(r.prompt_id, r.sample_index) for r in reqs]
    assert all(o.ok and o.version == "tiny" for o in first)
    assert all(0 < (o.completion_tokens or 0) <= 6 for o in first)
    assert [o.output for o in first] == [o.output for o in again]
    assert progress == [1, 2, 3, 4]


def test_missing_checkpoint_is_a_source_error(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    src = TransformersSource(TransformersSourceConfig(type="transformers", path=str(tmp_path / "nope")))
    with pytest.raises(SourceError, match="cannot load the checkpoint"):
        list(src.sample([SampleRequest("a", "x", 0)], Decoding()))


def test_cut_at_stop() -> None:
    assert cut_at_stop("abc\n\ndef", ["\n\n", "zz"]) == ("abc", True)
    assert cut_at_stop("abc", None) == ("abc", False)
