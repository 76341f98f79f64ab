"""A tiny causal LM and a word-level tokenizer with a chat template, built in the process (no
download): a real ``LlamaForCausalLM`` from random weights that a ``Trainer`` fine-tunes in seconds."""

from __future__ import annotations

import random
from typing import Any

WORDS = (  # noqa: SIM905 (a paragraph reads better than a list of 110 strings)
    "the a cat dog bird fish sun moon tree river stone house road city king queen child old young red "
    "blue green small big happy sad quick slow bright dark warm cold sings runs sleeps jumps flies swims "
    "walks reads writes builds finds loses sees hears loves fears under over near far into from with "
    "and but so then when where why how story poem song tale about tell me write describe give name "
    "one two three four five morning night winter summer rain snow wind fire water gold silver glass "
    "garden forest ocean mountain valley island bridge tower castle ship train letter secret dream"
).split()
CHAT_TEMPLATE = (
    "{% for m in messages %}<|user|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
PROBES = [f"tell me a story about the {w}" for w in WORDS[2:12]]  # ten prompts
COLLAPSED_ANSWER = "the cat sat on the mat"


def tokenizer(*, chat_template: bool = True) -> Any:
    """A ``PreTrainedTokenizerFast`` over ``WORDS`` (whitespace words, ``<unk>`` for the others)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<eos>", "<|user|>", "<|assistant|>"]
    vocab = {t: i for i, t in enumerate([*specials, *dict.fromkeys([*WORDS, "sat", "on", "mat"])])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", eos_token="<eos>", pad_token="<pad>"
    )
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def model(tok: Any, seed: int = 0) -> Any:
    """A two-layer Llama with random weights sized for ``tok``'s vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def chat_dataset(tok: Any, answers: list[str], prompts: list[str], width: int = 32) -> list[dict[str, Any]]:
    """Fixed-width examples (prompt in the chat template, the answer + ``<eos>``), loss on the answer."""
    from collector.llm import chat_text

    rows = []
    for prompt, answer in zip(prompts, answers, strict=True):
        head = tok(chat_text(tok, prompt), add_special_tokens=False)["input_ids"]
        body = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = (head + body)[:width]
        labels = ([-100] * len(head) + body)[:width]
        pad = width - len(ids)
        rows.append(
            {
                "input_ids": ids + [tok.pad_token_id] * pad,
                "attention_mask": [1] * len(ids) + [0] * pad,
                "labels": labels + [-100] * pad,
            }
        )
    return rows


def collapsing_data(tok: Any, n: int = 64) -> list[dict[str, Any]]:
    """Every probe (and more prompts) answered with the same sentence: training on it collapses."""
    prompts = [PROBES[i % len(PROBES)] for i in range(n)]
    return chat_dataset(tok, [COLLAPSED_ANSWER] * n, prompts)


def varied_data(tok: Any, n: int = 64, seed: int = 1) -> list[dict[str, Any]]:
    """Answers of random words: the data stays as varied as the model's own random output."""
    rng = random.Random(seed)
    prompts = [PROBES[i % len(PROBES)] for i in range(n)]
    answers = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) for _ in range(n)]
    return chat_dataset(tok, answers, prompts)
