"""A real "model collapse" series: fine-tune SmolLM2 on its own outputs, generation after generation.

This reproduces, at toy scale and on CPU, the mechanism of Shumailov et al. (2024, "AI models
collapse when trained on recursively generated data"): generation 0 is the base SmolLM2-135M-Instruct
checkpoint; for g = 1..G, model g-1 samples a training set (``--train-prompts`` x ``--train-k``
samples at ``--train-temperature``), and model g is model g-1 fine-tuned on those samples with a
plain causal-LM loss on the assistant turn only.  Finite samples under-represent rare continuations,
the fine-tune sharpens the model towards what it happened to say, and outputs narrow.

Every generation then samples the PROBE set (the first ``--probes`` default probes, ``--probe-k``
samples, ``--probe-temperature``, ``--probe-max-new-tokens``, one fixed ``--seed``) and the rows go to
``OUT_DIR/selftrain_series.jsonl`` as versions v1..v{G+1} of model ``assistant-selftrained``.  A healthy
control, three independent samples of the BASE model (seeds seed+1..seed+3) as v1..v3 of
``assistant-control``, goes to ``OUT_DIR/control_series.jsonl``.

Checkpoints live in ``WORK_DIR/gen{g}`` (default ``~/.cache/collapse-watch/self-train``), each written
to a temporary directory and renamed into place; a re-run reuses finished generations and their
probe samples (``--fresh`` starts over).  Training samples are kept as ``WORK_DIR/train_gen{g}.jsonl``.

Example (from the repository root, in the venv; ~25 min on 2 shared CPU cores):

    nohup python scripts/self_train.py > /tmp/self_train.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.llm import _COMPLETE, CONVERSION_FORMAT, generate, is_complete, smollm2_checkpoint
from collector.probes import Probe, load_probes

HERE = Path(__file__).resolve().parent
DEFAULT_TRAIN_PROMPTS = HERE / "self_train_prompts.txt"
DEFAULT_OUT_DIR = HERE.parent / "collector" / "demo_data"
SELFTRAIN_MODEL = "assistant-selftrained"
CONTROL_MODEL = "assistant-control"


def log(msg: str) -> None:
    """Progress line with a UTC timestamp, flushed at once (the script usually runs under nohup)."""
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())}] {msg}", flush=True)


def default_work_dir() -> Path:
    """``$COLLAPSE_WATCH_CACHE/self-train`` or ``~/.cache/collapse-watch/self-train``."""
    root = os.environ.get("COLLAPSE_WATCH_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "collapse-watch") / "self-train"


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Share of distinct word n-grams among all n-grams of ``texts`` (a quick progress check)."""
    grams: list[tuple[str, ...]] = []
    for t in texts:
        words = t.lower().split()
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


def sample_rows(
    checkpoint: Path,
    probes: list[Probe],
    k: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    batch: int,
    device: str = "cpu",
) -> list[tuple[Probe, str]]:
    """``k`` samples per probe from ``checkpoint`` as (probe, output) pairs, probe-major order."""
    outs = generate(
        checkpoint,
        [p.text for p in probes],
        k=k,
        temperature=temperature,
        top_p=1.0,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch,
        device=device,
    )
    return [(p, o) for p, samples in zip(probes, outs, strict=True) for o in samples]


def encode_example(tok: Any, prompt: str, output: str, max_new_tokens: int) -> tuple[list[int], list[int]]:
    """Token ids and labels of one chat exchange; labels are -100 except on the assistant turn.

    The end-of-turn token is trained only when the sample ended by itself (shorter than the
    sampling budget); a sample cut at ``max_new_tokens`` must not teach the model to stop there.
    """
    messages = [{"role": "user", "content": prompt}]
    head = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    head_ids = tok(head, add_special_tokens=False)["input_ids"]
    body_ids = tok(output, add_special_tokens=False)["input_ids"]
    if len(body_ids) < max_new_tokens - 2:
        body_ids = body_ids + tok("<|im_end|>", add_special_tokens=False)["input_ids"]
    return head_ids + body_ids, [-100] * len(head_ids) + body_ids


def pad_batch(batch: list[dict[str, list[int]]], pad: int) -> dict[str, Any]:
    """Right-pad a batch to a multiple of 16 tokens (few distinct shapes); loss only on labels."""
    import torch

    width = -(-max(len(x["input_ids"]) for x in batch) // 16) * 16
    return {
        "input_ids": torch.tensor([x["input_ids"] + [pad] * (width - len(x["input_ids"])) for x in batch]),
        "labels": torch.tensor([x["labels"] + [-100] * (width - len(x["labels"])) for x in batch]),
        "attention_mask": torch.tensor(
            [[1] * len(x["input_ids"]) + [0] * (width - len(x["input_ids"])) for x in batch]
        ),
    }


def fine_tune(
    parent: Path,
    target: Path,
    examples: list[tuple[str, str]],
    args: argparse.Namespace,
    seed: int,
    callbacks: list[Any] | None = None,
) -> dict[str, float]:
    """Fine-tune ``parent`` on (prompt, output) pairs with a Hugging Face ``Trainer`` (AdamW, linear
    decay, gradient clipping 1.0, bf16 autocast) and save it atomically as ``target``.
    ``callbacks`` (the collapse-watch callback) are handed to the trainer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    tok = AutoTokenizer.from_pretrained(str(parent))
    model = AutoModelForCausalLM.from_pretrained(str(parent), dtype=torch.float32)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    encoded = [encode_example(tok, p, o, args.train_max_new_tokens) for p, o in examples]
    rows = [{"input_ids": ids, "labels": labels} for ids, labels in encoded]
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.trainer-", dir=target.parent))
    train_args = TrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=0.0,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        bf16=args.bf16,
        use_cpu=args.device == "cpu",
        seed=seed,
        logging_steps=8,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=train_args,
        train_dataset=rows,
        data_collator=lambda batch: pad_batch(batch, pad),
        callbacks=callbacks,
    )
    t0 = time.perf_counter()
    out = trainer.train()
    train_s = time.perf_counter() - t0
    shutil.rmtree(scratch, ignore_errors=True)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    model.eval().to("cpu")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / _COMPLETE).write_text(
            f"self-trained from {parent.name}; {CONVERSION_FORMAT}\n", encoding="utf-8"
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "train_s": train_s,
        "steps": float(out.global_step),
        "first_loss": losses[0] if losses else out.training_loss,
        "last_loss": losses[-1] if losses else out.training_loss,
    }


def watch_callback(args: argparse.Namespace, g: int, probes: list[Probe], parent: Path) -> Any:
    """The collapse-watch callback of generation ``g``: it records the probe answers of the model
    being fine-tuned as versions ``gen{g}-step-N`` of ``--watch-model`` (generation 1 also records
    the base model at step 0, the baseline) and stops on ``collapse_suspected``."""
    from transformers import AutoTokenizer

    from collapse_watch.integrations.transformers import CollapseWatchCallback

    return CollapseWatchCallback(
        model_name=args.watch_model,
        probes=[p.text for p in probes],
        tokenizer=AutoTokenizer.from_pretrained(str(parent)),
        database_url=args.watch_db,
        every_steps=None,  # at the end of each generation's fine-tune (and at step 0 of the first)
        samples_per_prompt=args.probe_k,
        max_new_tokens=args.probe_max_new_tokens,
        temperature=args.probe_temperature,
        seed=args.seed,
        batch_size=args.gen_batch,
        stop_on="collapse_suspected",
        version_prefix=f"gen{g}-",
        check_at_start=g == 1,
    )


def probe_records(
    rows: list[tuple[Probe, str]], model: str, version: str, seed: int, generation: int | None
) -> list[dict[str, Any]]:
    """JSONL records for sampled probe rows."""
    out = []
    for probe, text in rows:
        rec: dict[str, Any] = {"prompt_id": probe.id, "prompt": probe.text, "output": text, "model": model}
        rec["version"] = version
        if generation is not None:
            rec["generation"] = generation
        rec["seed"] = seed
        out.append(rec)
    return out


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records as JSONL via a temporary file and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def probe_generation(
    checkpoint: Path, g: int, probes: list[Probe], args: argparse.Namespace, work: Path
) -> list[dict[str, Any]]:
    """Probe records of generation ``g`` (cached in ``work/probe_gen{g}.jsonl``)."""
    cache = work / f"probe_gen{g}.jsonl"
    if cache.is_file() and not args.fresh:
        log(f"gen {g}: probe samples reused from {cache}")
        return read_jsonl(cache)
    t0 = time.perf_counter()
    rows = sample_rows(
        checkpoint,
        probes,
        args.probe_k,
        args.probe_temperature,
        args.probe_max_new_tokens,
        args.seed,
        args.gen_batch,
        args.device,
    )
    recs = probe_records(rows, SELFTRAIN_MODEL, f"v{g + 1}", args.seed, g)
    write_jsonl(cache, recs)
    texts = [r["output"] for r in recs]
    log(
        f"gen {g}: {len(recs)} probe samples in {time.perf_counter() - t0:.0f}s; "
        f"distinct-2 {distinct_n(texts):.3f}, mean {sum(len(t.split()) for t in texts) / len(texts):.1f} words"
    )
    return recs


def training_rows(
    checkpoint: Path, g: int, train_probes: list[Probe], args: argparse.Namespace, work: Path
) -> list[tuple[Probe, str]]:
    """Generation ``g``'s training texts, sampled from ``checkpoint`` (cached in ``work``)."""
    train_file = work / f"train_gen{g}.jsonl"
    if train_file.is_file() and not args.fresh:
        rows = [(Probe(r["prompt_id"], r["prompt"]), r["output"]) for r in read_jsonl(train_file)]
        log(f"gen {g}: {len(rows)} training texts reused from {train_file}")
        return rows
    t0 = time.perf_counter()
    rows = sample_rows(
        checkpoint,
        train_probes,
        args.train_k,
        args.train_temperature,
        args.train_max_new_tokens,
        args.seed + 1000 * g,
        args.gen_batch,
        args.device,
    )
    write_jsonl(train_file, probe_records(rows, f"gen{g - 1}", "train", args.seed, g - 1))
    log(f"gen {g}: sampled {len(rows)} training texts from gen {g - 1} in {time.perf_counter() - t0:.0f}s")
    return rows


def watched_run(
    args: argparse.Namespace,
    base: Path,
    probes: list[Probe],
    train_probes: list[Probe],
    work: Path,
    t_all: float,
) -> int:
    """Self-training under CollapseWatchCallback: each generation's fine-tune is watched, and the
    series ends at the first generation whose probe answers the callback judges collapse_suspected."""
    ckpts = [base]
    verdicts: list[dict[str, Any]] = []
    for g in range(1, args.generations + 1):
        rows = training_rows(ckpts[-1], g, train_probes, args, work)
        log(f"gen {g}: training set distinct-2 {distinct_n([o for _, o in rows]):.3f}")
        callback = watch_callback(args, g, probes, ckpts[-1])
        target = work / f"gen{g}"
        stats = fine_tune(ckpts[-1], target, [(p.text, o) for p, o in rows], args, args.seed + g, [callback])
        summary = callback.summary()
        log(
            f"gen {g}: fine-tuned {int(stats['steps'])} steps in {stats['train_s']:.0f}s "
            f"(loss {stats['first_loss']:.3f} -> {stats['last_loss']:.3f}); watch checks "
            f"{summary['checks']} took {summary['check_seconds']:.0f}s ({100 * summary['time_share']:.1f}% of the fine-tune)"
        )
        verdicts += [
            {
                "generation": g if c.step else g - 1,
                "version": c.recorded.version,
                "step": c.step,
                "status": c.verdict.status,
                "reasons": list(c.verdict.reasons),
                "vs_previous": None if c.recorded.vs_previous is None else c.recorded.vs_previous.status,
                "check_seconds": round(c.seconds, 1),
            }
            for c in callback.checks
        ]
        callback.watch.close()
        ckpts.append(target)
        if callback.stop_reason:
            log(f"gen {g}: {callback.stop_reason}")
            break
    if args.watch_export:
        export_watched(args, verdicts)
    log(f"done in {time.perf_counter() - t_all:.0f}s")
    return 0


def export_watched(args: argparse.Namespace, verdicts: list[dict[str, Any]]) -> None:
    """The probe answers the callback recorded (one version per check) and its verdicts."""
    from collector.store import Store

    store = Store(args.watch_db)
    records: list[dict[str, Any]] = []
    for v in verdicts:
        run_id = store.latest_completed_run(args.watch_model, v["version"])
        assert run_id is not None
        for s in sorted(store.run_samples(run_id), key=lambda s: s.sample_index):
            records.append(
                {
                    "prompt_id": s.prompt_key,
                    "prompt": s.prompt,
                    "output": s.output,
                    "model": args.watch_model,
                    "version": v["version"],
                    "generation": v["generation"],
                    "seed": args.seed,
                }
            )
    store.engine.dispose()
    write_jsonl(args.watch_export, records)
    args.watch_export.with_suffix(".verdicts.json").write_text(
        json.dumps(verdicts, indent=2) + "\n", encoding="utf-8"
    )
    log(f"wrote {args.watch_export} ({len(records)} rows) and its verdicts")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generations", "-G", type=int, default=3, help="fine-tuning generations G (default 3)")
    ap.add_argument(
        "--train-prompts-file", type=Path, default=DEFAULT_TRAIN_PROMPTS, help="training prompts .txt"
    )
    ap.add_argument(
        "--train-prompts", type=int, default=32, help="use the first N training prompts (default 32)"
    )
    ap.add_argument("--train-k", type=int, default=4, help="training samples per prompt (default 4)")
    ap.add_argument("--train-temperature", type=float, default=1.0, help="default 1.0")
    ap.add_argument("--train-max-new-tokens", type=int, default=48, help="default 48")
    ap.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate, linear decay (default 2e-4)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per generation (default 2)")
    ap.add_argument("--batch-size", type=int, default=8, help="fine-tuning batch size (default 8)")
    ap.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bf16 autocast for the fine-tune (default on: ~2.5x faster on an AVX512-BF16 CPU)",
    )
    ap.add_argument("--probes", type=int, default=16, help="first N default probes (default 16)")
    ap.add_argument("--probe-k", type=int, default=4, help="probe samples per prompt (default 4)")
    ap.add_argument("--probe-temperature", type=float, default=1.0, help="default 1.0")
    ap.add_argument("--probe-max-new-tokens", type=int, default=40, help="default 40")
    ap.add_argument("--gen-batch", type=int, default=32, help="sampling batch size (default 32)")
    ap.add_argument(
        "--seed", type=int, default=1234, help="probe seed; training seeds derive from it (default 1234)"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine 2 threads spin at barriers, ~5x slower; 0 = torch's)",
    )
    ap.add_argument("--no-control", action="store_true", help="skip the base-model control series")
    ap.add_argument(
        "--train-on-probes",
        action="store_true",
        help="add every default probe prompt to the training prompts, as a model retrained on its own "
        "production traffic would see them (default: disjoint prompts, to measure generalisation)",
    )
    ap.add_argument(
        "--work-dir", type=Path, default=None, help="checkpoints (default ~/.cache/collapse-watch/self-train)"
    )
    ap.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="where the two series JSONL files go"
    )
    ap.add_argument("--fresh", action="store_true", help="ignore finished generations and cached samples")
    ap.add_argument(
        "--watch-db",
        default=None,
        help="SQLAlchemy URL: watch every fine-tune with CollapseWatchCallback, recording the probe answers "
        "into this history, and stop at the first generation judged collapse_suspected (no probe series "
        "is sampled separately then; export it with --watch-export)",
    )
    ap.add_argument("--watch-model", default="selftrain-watched", help="model name in the watched history")
    ap.add_argument(
        "--watch-export",
        type=Path,
        default=None,
        help="with --watch-db: write the recorded probe answers "
        "(JSONL, one version per generation) and the callback's verdicts (.verdicts.json beside it)",
    )
    ap.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    args = ap.parse_args(argv)

    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads; args {vars(args)}")
    t_all = time.perf_counter()
    work = args.work_dir or default_work_dir()
    work.mkdir(parents=True, exist_ok=True)
    probes = load_probes("default")[: args.probes]
    train_probes = load_probes(str(args.train_prompts_file))[: args.train_prompts]
    if args.train_on_probes:
        known = {p.text for p in train_probes}
        train_probes += [p for p in load_probes("default") if p.text not in known]
    else:
        overlap = {p.text for p in probes} & {p.text for p in train_probes}
        if overlap:
            ap.error(f"training prompts overlap the probe set: {sorted(overlap)}")
    series_path = args.out_dir / "selftrain_series.jsonl"

    ckpts = [smollm2_checkpoint()]
    if args.watch_db:
        return watched_run(args, ckpts[0], probes, train_probes, work, t_all)
    series = probe_generation(ckpts[0], 0, probes, args, work)
    write_jsonl(series_path, series)
    for g in range(1, args.generations + 1):
        target = work / f"gen{g}"
        if is_complete(target) and not args.fresh:
            log(f"gen {g}: checkpoint {target} exists, reused")
        else:
            rows = training_rows(ckpts[-1], g, train_probes, args, work)
            log(f"gen {g}: training set distinct-2 {distinct_n([o for _, o in rows]):.3f}")
            stats = fine_tune(ckpts[-1], target, [(p.text, o) for p, o in rows], args, args.seed + g)
            log(
                f"gen {g}: fine-tuned {int(stats['steps'])} steps in {stats['train_s']:.0f}s "
                f"(loss {stats['first_loss']:.3f} -> {stats['last_loss']:.3f}), saved {target}"
            )
        ckpts.append(target)
        series += probe_generation(target, g, probes, args, work)
        write_jsonl(series_path, series)
        log(f"wrote {series_path} ({len(series)} rows, {series_path.stat().st_size / 1024:.0f} KB)")

    if not args.no_control:
        control: list[dict[str, Any]] = []
        for i in range(1, 4):
            t0 = time.perf_counter()
            seed = args.seed + i
            rows = sample_rows(
                ckpts[0],
                probes,
                args.probe_k,
                args.probe_temperature,
                args.probe_max_new_tokens,
                seed,
                args.gen_batch,
                args.device,
            )
            control += probe_records(rows, CONTROL_MODEL, f"v{i}", seed, 0)
            log(f"control v{i} (seed {seed}): {len(rows)} samples in {time.perf_counter() - t0:.0f}s")
        control_path = args.out_dir / "control_series.jsonl"
        write_jsonl(control_path, control)
        log(f"wrote {control_path} ({len(control)} rows)")
    log(f"done in {time.perf_counter() - t_all:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
