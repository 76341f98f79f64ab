"""Sample probe prompts from a local Hugging Face checkpoint directory, in-process.

The model and tokenizer are loaded lazily on the first ``sample`` call (``AutoModelForCausalLM``,
``AutoTokenizer``).  Prompts go through the tokenizer's chat template when it has one, are
left-padded into batches of ``batch_size`` and sampled with the decoding parameters
(``temperature == 0`` means greedy).  With a ``seed``, each batch seeds torch with
``seed + index of its first request``, so a run is reproducible for a fixed request order and batch
size.  ``stop`` strings cut the decoded text.  Failures of a batch (e.g. out of memory) become error
outcomes for its requests.  Requires the ``llm`` extra (transformers, torch).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from collector.config import Decoding, TransformersSourceConfig
from collector.sources.base import Progress, SampleOutcome, SampleRequest, SourceError


def cut_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    """``text`` up to the first stop string; True if one was found."""
    cuts = [i for i in (text.find(s) for s in (stop or []) if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class TransformersSource:
    """A sampling source over a local causal-LM checkpoint."""

    kind = "transformers"

    def __init__(self, cfg: TransformersSourceConfig, *, version: str | None = None) -> None:
        self.cfg = cfg
        self.version = version
        self._model: Any = None
        self._tok: Any = None

    def _load(self) -> None:
        """The checkpoint's (tokenizer, model), loaded once per process and shared by every run."""
        if self._model is not None:
            return
        try:
            from collector.llm import ModelError, load_model
        except ImportError as e:
            raise SourceError(f"transformers source needs the 'llm' extra: {e}") from None
        try:
            self._tok, self._model = load_model(self.cfg.path)
        except (ModelError, OSError, ValueError) as e:
            raise SourceError(
                f"transformers source: cannot load the checkpoint at {self.cfg.path}: {e}"
            ) from None
        if self.cfg.device != "cpu":
            self._model = self._model.to(self.cfg.device)

    def _render(self, prompt: str) -> str:
        from collector.llm import chat_text

        return chat_text(self._tok, prompt)

    def sample(
        self, requests: Sequence[SampleRequest], decoding: Decoding, progress: Progress | None = None
    ) -> Iterator[SampleOutcome]:
        """Yield one outcome per request, batch by batch, in request order."""
        self._load()
        total, done = len(requests), 0
        for start in range(0, total, self.cfg.batch_size):
            batch = list(requests[start : start + self.cfg.batch_size])
            for out in self._batch(batch, decoding):
                done += 1
                yield out
                if progress is not None:
                    progress(done, total)

    def _batch(self, batch: list[SampleRequest], decoding: Decoding) -> list[SampleOutcome]:
        import torch

        params: dict[str, Any] = {
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
            "max_tokens": decoding.max_tokens,
        }
        if decoding.seed is not None:
            params["seed"] = decoding.seed + batch[0].sample_index
        if decoding.stop:
            params["stop"] = list(decoding.stop)
        outs = [SampleOutcome(r.prompt_id, r.prompt, r.sample_index, decoding=params) for r in batch]
        t0 = time.monotonic()
        try:
            enc = self._tok([self._render(r.prompt) for r in batch], return_tensors="pt", padding=True)
            enc = {k: v.to(self.cfg.device) for k, v in enc.items()}
            if decoding.seed is not None:
                torch.manual_seed(decoding.seed + batch[0].sample_index)
            gen: dict[str, Any] = {
                "max_new_tokens": decoding.max_tokens,
                "pad_token_id": self._tok.pad_token_id,
            }
            if decoding.temperature > 0:
                gen.update(do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p)
            else:
                gen.update(do_sample=False)
            with torch.no_grad():
                seqs = self._model.generate(**enc, **gen)
        except (RuntimeError, ValueError) as e:
            for o in outs:
                o.error = f"transformers generation failed for {self.cfg.path}: {e}"
            return outs
        latency = (time.monotonic() - t0) / len(batch)
        width = enc["input_ids"].shape[1]
        eos = self._tok.eos_token_id
        for o, row, mask in zip(outs, seqs, enc["attention_mask"], strict=True):
            new = row[width:].tolist()
            if eos is not None and eos in new:
                new, finish = new[: new.index(eos)], "stop"
            else:
                finish = "length"
            text, stopped = cut_at_stop(self._tok.decode(new, skip_special_tokens=True), decoding.stop)
            o.output = text
            o.finish_reason = "stop" if stopped else finish
            o.prompt_tokens = int(mask.sum())
            o.completion_tokens = len(new)
            o.latency_seconds = latency
            o.version = self.version
            o.model_reported = self.cfg.path
        return outs

    def close(self) -> None:
        self._model = None
        self._tok = None
