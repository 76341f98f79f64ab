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
import random
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


def fine_tune(
    parent: Path,
    target: Path,
    examples: list[tuple[str, str]],
    args: argparse.Namespace,
    seed: int,
) -> dict[str, float]:
    """Fine-tune ``parent`` on (prompt, output) pairs and save it atomically as ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tok = AutoTokenizer.from_pretrained(str(parent))
    model = AutoModelForCausalLM.from_pretrained(str(parent), dtype=torch.float32).to(args.device)
    model.train()
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    encoded = [encode_example(tok, p, o, args.train_max_new_tokens) for p, o in examples]
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    steps_per_epoch = (len(encoded) + args.batch_size - 1) // args.batch_size
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(total, 1))
    t0, step, losses = time.perf_counter(), 0, []
    for epoch in range(args.epochs):
        order = list(range(len(encoded)))
        rng.shuffle(order)
        ep_losses = []
        for start in range(0, len(order), args.batch_size):
            batch = [encoded[i] for i in order[start : start + args.batch_size]]
            width = -(-max(len(ids) for ids, _ in batch) // 16) * 16  # few distinct shapes
            ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in batch], device=args.device)
            labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch], device=args.device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch], device=args.device)
            with torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16, enabled=args.bf16):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            ep_losses.append(loss.item())
            if step % 8 == 0:
                log(f"  step {step}/{total}: loss {loss.item():.3f} ({time.perf_counter() - t0:.0f}s)")
        losses.append(sum(ep_losses) / len(ep_losses))
        log(
            f"  epoch {epoch + 1}/{args.epochs}: mean loss {losses[-1]:.3f} ({time.perf_counter() - t0:.0f}s)"
        )
    train_s = time.perf_counter() - t0
    model.eval().to("cpu")
    target.parent.mkdir(parents=True, exist_ok=True)
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
    return {"train_s": train_s, "steps": float(step), "first_loss": losses[0], "last_loss": losses[-1]}


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
    series = probe_generation(ckpts[0], 0, probes, args, work)
    write_jsonl(series_path, series)
    for g in range(1, args.generations + 1):
        target = work / f"gen{g}"
        if is_complete(target) and not args.fresh:
            log(f"gen {g}: checkpoint {target} exists, reused")
        else:
            train_file = work / f"train_gen{g}.jsonl"
            if train_file.is_file() and not args.fresh:
                rows = [(Probe(r["prompt_id"], r["prompt"]), r["output"]) for r in read_jsonl(train_file)]
                log(f"gen {g}: {len(rows)} training texts reused from {train_file}")
            else:
                t0 = time.perf_counter()
                rows = sample_rows(
                    ckpts[-1],
                    train_probes,
                    args.train_k,
                    args.train_temperature,
                    args.train_max_new_tokens,
                    args.seed + 1000 * g,
                    args.gen_batch,
                    args.device,
                )
                write_jsonl(train_file, probe_records(rows, f"gen{g - 1}", "train", args.seed, g - 1))
                log(
                    f"gen {g}: sampled {len(rows)} training texts from gen {g - 1} in {time.perf_counter() - t0:.0f}s"
                )
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
