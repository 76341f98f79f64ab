"""The release-gate action (``action.yml``) and the pre-promotion example, run locally: the
action's compare step is executed by bash as GitHub would run it (the install step is left out:
the package is the one under test, reached through a ``collapse-watch`` shim), against shipped files."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
V1, V4 = DATA / "series_v1.jsonl", DATA / "series_v4.jsonl"


def shims(tmp_path: Path) -> dict[str, str]:
    """``collapse-watch`` and ``python`` on PATH: this interpreter and this checkout."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, cmd in (
        ("collapse-watch", f'"{sys.executable}" -m collector'),
        ("python", f'"{sys.executable}"'),
    ):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {cmd} "$@"\n', encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}


def action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))


def run_gate(
    tmp_path: Path,
    baseline: Path | str,
    candidate: Path | str,
    files: dict[str, Path] | None = None,
    **inputs: str,
) -> tuple[int, str, str]:
    """The action's steps but the install, as GitHub runs them: in order, stopping at a failed one.
    ``files`` are copied into the job's working directory under the names given."""
    spec = action()
    defaults = {k: str(v.get("default", "")) for k, v in spec["inputs"].items()}
    given = {
        **defaults,
        "baseline": str(baseline),
        "candidate": str(candidate),
        "embeddings": "false",
        **inputs,
    }
    work = Path(tempfile.mkdtemp(dir=tmp_path))  # one job's files per call
    for name, source in (files or {}).items():
        (work / name).write_bytes(source.read_bytes())
    out, summary = work / "output", work / "summary.md"
    for step_id in ("inputs", "gate"):
        step = next(s for s in spec["runs"]["steps"] if s.get("id") == step_id)
        env = {**os.environ, **shims(tmp_path)}
        for key, expr in step["env"].items():  # ${{ inputs.NAME }}
            env[key] = given[expr.strip("${} ").removeprefix("inputs.")]
        env.update(GITHUB_OUTPUT=str(out), GITHUB_STEP_SUMMARY=str(summary))
        proc = subprocess.run(
            ["bash", "-e", "-c", step["run"]], env=env, cwd=work, capture_output=True, text=True, timeout=600
        )
        if proc.returncode:
            break
    return (
        proc.returncode,
        out.read_text(encoding="utf-8") if out.exists() else "",
        summary.read_text(encoding="utf-8") if summary.exists() else proc.stdout + proc.stderr,
    )


def test_the_action_is_a_composite_with_its_documented_inputs() -> None:
    spec = action()
    assert spec["runs"]["using"] == "composite"
    assert {"baseline", "candidate", "embeddings", "fail-on", "database-url"} <= set(spec["inputs"])
    assert all(s["shell"] == "bash" for s in spec["runs"]["steps"])
    assert {"verdict", "exit-code"} <= set(spec["outputs"])


@pytest.mark.slow
def test_the_gate_fails_a_collapsed_candidate_and_writes_the_summary(tmp_path: Path) -> None:
    code, outputs, summary = run_gate(tmp_path, V1, V4)
    assert code == 1 and "verdict=collapse_suspected" in outputs and "exit-code=1" in outputs
    assert summary.startswith("### collapse-watch: `collapse_suspected`")
    assert "| metric | scope |" in summary and "| distinct_2 | within |" in summary and "**yes**" in summary
    code, outputs, _ = run_gate(tmp_path, V1, V4, **{"fail-on": "never"})
    assert code == 0 and "verdict=collapse_suspected" in outputs


@pytest.mark.slow
def test_the_gate_passes_the_same_outputs_and_reports_bad_input(tmp_path: Path) -> None:
    code, outputs, _ = run_gate(tmp_path, V1, V1)
    assert code == 0 and "verdict=ok" in outputs
    code, _, stderr = run_gate(tmp_path, V1, tmp_path / "missing.jsonl")
    assert code == 2 and "missing.jsonl" in stderr


@pytest.mark.slow
def test_the_pre_promotion_example_blocks_a_collapsed_candidate(tmp_path: Path) -> None:
    script = ROOT / "examples" / "pre_promotion.sh"
    env = {**os.environ, **shims(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(script), *args, "--no-embeddings"]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    blocked, promoted = run(str(V1), str(V4)), run(str(V1), str(V1))
    assert blocked.returncode == 1 and "blocked" in blocked.stderr
    assert promoted.returncode == 0 and "promote" in promoted.stdout


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            {"fail-on": "colapse_suspected"},
            "input fail-on is 'colapse_suspected'; expected collapse_suspected, watch",
        ),
        ({"fail-on": "Watch"}, "input fail-on is 'Watch'"),
        ({"fail-on-inconclusive": "yes"}, "input fail-on-inconclusive is 'yes'; expected true or false"),
        ({"embeddings": "flase"}, "input embeddings is 'flase'; expected true or false"),
    ],
)
def test_a_mistyped_input_fails_the_gate_instead_of_passing_it(
    tmp_path: Path, inputs: dict[str, str], message: str
) -> None:
    code, outputs, text = run_gate(tmp_path, V1, V4, **inputs)
    assert code == 2 and "exit-code=2" in outputs
    assert f"::error title=collapse-watch gate::{message}" in text


@pytest.mark.slow
def test_files_named_like_options_are_compared_and_names_cannot_forge_the_summary(tmp_path: Path) -> None:
    hostile = "x|`y`[z](javascript:e.example)<img src=x>&*_#.jsonl"
    code, outputs, summary = run_gate(
        tmp_path, "--help", hostile, files={"--help": V1, hostile: V4}, **{"fail-on": "never"}
    )
    assert code == 0 and "verdict=collapse_suspected" in outputs, summary
    line = summary.splitlines()[2]  # "<candidate> vs <baseline>, N shared prompts"
    assert line == (
        "x\\|\\`y\\`\\[z\\]\\(javascript:e\\.example\\)&lt;img src=x&gt;&amp;\\*\\_\\#\\.jsonl vs "
        "\\-\\-help, 16 shared prompts"
    )
    assert "<img" not in summary and "](" not in summary


def test_the_pre_promotion_example_refuses_bad_usage_with_exit_2(tmp_path: Path) -> None:
    script = ROOT / "examples" / "pre_promotion.sh"
    env = {**os.environ, **shims(tmp_path)}
    for args, extra_env, message in (
        ([str(V1)], {}, "usage: pre_promotion.sh BASELINE CANDIDATE"),
        ([str(V1), str(V4), "extra.jsonl"], {}, "'extra.jsonl' is not an option"),
        ([str(V1), str(V4)], {"ALLOW_WATCH": "yes"}, "ALLOW_WATCH must be 0 or 1, got 'yes'"),
    ):
        proc = subprocess.run(
            [str(script), *args], env={**env, **extra_env}, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


@pytest.mark.slow
def test_the_pre_promotion_example_takes_files_named_like_options(tmp_path: Path) -> None:
    (tmp_path / "--help").write_bytes(V1.read_bytes())
    (tmp_path / "-v4.jsonl").write_bytes(V4.read_bytes())
    env = {**os.environ, **shims(tmp_path)}
    proc = subprocess.run(
        [str(ROOT / "examples" / "pre_promotion.sh"), "--help", "-v4.jsonl", "--no-embeddings"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1 and "blocked" in proc.stderr, proc.stdout + proc.stderr
