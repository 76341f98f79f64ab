"""The OpenVINO embedding backend: the packaged sentence-transformers model compiled for this CPU.

Measured on the 2-core development machine (AVX512-BF16 / AMX; docs/performance.md): OpenVINO in
bfloat16 runs MiniLM-L6 at about 4x plain sentence-transformers fp32 with every embedding within
cosine 0.9999 of the fp32 one; torch bf16 about 2.2x, ONNX Runtime fp32 1.3x and its dynamic int8
quantisation 1.6x at min cosine 0.91 (rejected).

The model is converted once from the local weights (``openvino.convert_model`` on the transformer
with mean pooling and L2 normalisation folded in; needs torch and transformers, the ``local``
extra) and kept as OpenVINO IR in the user's cache directory, keyed by the weights file's path,
size and mtime, so nothing is ever downloaded and the IR is never committed. Later processes read
the IR and its compiled blob from there (no torch import). Text is tokenised with the model's own
``tokenizer.json`` (the ``tokenizers`` library, as sentence-transformers does), truncated to its
``max_seq_length``, in length-sorted batches padded to their longest text.

Only models shaped like the packaged one (a Transformer, then mean pooling, optionally Normalize)
are supported; ``supported(path)`` says so without importing anything heavy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

IR_VERSION = "1"  # bump when the conversion below changes: a new cache key, the old IR is ignored


def _pooling(path: Path) -> dict[str, Any] | None:
    """The Pooling config of a Transformer -> Pooling (-> Normalize) model directory, else None."""
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
            return None
        pooling = json.loads((path / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return pooling if isinstance(pooling, dict) else None


def supported(path: str | Path) -> bool:
    """Whether ``path`` is a local sentence-transformers directory this backend can run (mean
    pooling, a fast tokenizer file), checked without importing anything heavy."""
    pooling = _pooling(Path(path))
    if pooling is None or not (Path(path) / "tokenizer.json").is_file():
        return False
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    return modes == {"pooling_mode_mean_tokens"} and isinstance(pooling.get("word_embedding_dimension"), int)


def config_dimension(path: str | Path) -> int | None:
    """The embedding length of a supported model, read from its pooling config (None otherwise)."""
    return int(_pooling(Path(path))["word_embedding_dimension"]) if supported(path) else None  # type: ignore[index]


def bf16_native(cache_root: Path | None = None) -> bool:
    """Whether OpenVINO's CPU plugin computes bfloat16 natively here (AVX512-BF16 / AMX).

    The answer names the embedding identity, which a cached `compare` needs before (and instead of)
    loading the model; with ``cache_root`` it is remembered there per OpenVINO version and CPU, so
    that run does not import OpenVINO at all (0.3-0.5 s).
    """
    key = _cpu_key()
    memo = cache_root / "openvino" / "bf16_native.json" if cache_root is not None and key else None
    if memo is not None:
        try:
            known = json.loads(memo.read_text(encoding="utf-8"))
            if isinstance(known.get(key), bool):
                return bool(known[key])
        except (OSError, ValueError, AttributeError):
            pass
    import openvino as ov

    native = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if memo is not None:
        tmp = memo.with_name(f"{memo.name}.{os.getpid()}")
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({key: native}), encoding="utf-8")
            tmp.replace(memo)
        except OSError:  # a read-only or full cache: asked again next time, nothing left behind
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return native


def _cpu_key() -> str | None:
    """OpenVINO's version and this CPU's model and flags (Linux), or None where unknown."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ov_version = version("openvino")
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except (PackageNotFoundError, OSError):
        return None
    lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))][:2]
    if len(lines) < 2:
        return None
    return hashlib.sha256("|".join([ov_version, *lines]).encode()).hexdigest()[:16]


def _weights(path: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return path / name
    raise RuntimeError(f"no model.safetensors or pytorch_model.bin in {path}")


def ir_dir(path: str | Path, cache_root: Path) -> Path:
    """Where the IR of the model at ``path`` lives: keyed by its weights' path, size and mtime."""
    w = _weights(Path(path)).resolve()
    st = w.stat()
    key = hashlib.sha256(f"{IR_VERSION}|{w}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root / "openvino" / f"{Path(path).resolve().name}-{key}"


def convert(path: Path, dest: Path) -> None:
    """Convert the sentence-transformers model at ``path`` to OpenVINO IR in ``dest`` (atomically)."""
    import openvino as ov

    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise RuntimeError(
            "converting the model for OpenVINO (once, into the user's cache) needs torch and "
            "transformers: install 'collapse-watch[local]'"
        ) from exc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bert = AutoModel.from_pretrained(str(path), local_files_only=True).eval()

    class Pooled(torch.nn.Module):  # transformer + mean pooling + L2 normalisation, one graph
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            h = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            mean = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    example = torch.ones((2, 16), dtype=torch.int64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python branches of BERT
        model = ov.convert_model(
            Pooled(bert).eval(),
            example_input={"input_ids": example, "attention_mask": example},
            input=[("input_ids", [-1, -1], ov.Type.i64), ("attention_mask", [-1, -1], ov.Type.i64)],
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)  # fp32 weights, as shipped
        tmp.rename(dest)  # another process may have won the race (its IR is the same): ours goes
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk, a kill: no half-written IR left behind
        if not (isinstance(exc, OSError) and dest.is_dir()):
            raise


class OpenVINOModel:
    """The model at ``path`` compiled for the CPU in ``precision`` ("bf16" or "fp32")."""

    def __init__(
        self, path: str | Path, precision: str, cache_root: Path, threads: int | None = None
    ) -> None:
        import openvino as ov
        from tokenizers import Tokenizer

        path = Path(path)
        if not supported(path):
            raise RuntimeError(
                f"the openvino embedding backend runs sentence-transformers models with mean pooling; "
                f"{path} is not one (use --embedding-backend bf16 or fp32)"
            )
        where = ir_dir(path, cache_root)
        if not (where / "model.xml").is_file():
            convert(path, where)
        # Streams, not one multi-threaded request: each batch runs on one thread and the batches run
        # side by side, one stream per core. On two shared cores this measured 1.4-1.5x the LATENCY
        # hint (whose threads wait on each other when a neighbour takes a core; docs/performance.md).
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "THROUGHPUT",
            "CACHE_DIR": str(where / "compiled"),  # the compiled blob: later loads skip compilation
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        self.compiled = core.compile_model(str(where / "model.xml"), "CPU", config)
        n_requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._queue = ov.AsyncInferQueue(self.compiled, max(1, n_requests))
        self._lock = threading.Lock()  # one queue: one encode() at a time
        bert = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(int(bert.get("max_seq_length", 256)))
        self.tokenizer.enable_padding()
        self.dimension = int(config_dimension(path) or 0)
        self.precision = precision

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """L2-normalised float32 rows, in input order (length-sorted batches, run side by side)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))

        def done(request: Any, idx: list[int]) -> None:
            out[idx] = request.get_output_tensor(0).data

        with self._lock:
            self._queue.set_callback(done)
            try:
                for start in range(0, len(order), batch_size):
                    idx = order[start : start + batch_size]
                    enc = self.tokenizer.encode_batch([texts[i] for i in idx])
                    ids = np.array([e.ids for e in enc], dtype=np.int64)
                    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
                    self._queue.start_async({"input_ids": ids, "attention_mask": mask}, idx)
            finally:
                # Also when Ctrl-C (or an error) stops the loop: a request still running would call
                # back into an interpreter shutting down, which aborts the process (SIGABRT, 134).
                self._queue.wait_all()
        return out


__all__ = ["OpenVINOModel", "bf16_native", "config_dimension", "convert", "ir_dir", "supported"]
