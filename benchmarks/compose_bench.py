"""Build and start-up times of the compose stack as tests/test_compose_stack.py runs it.

    python benchmarks/compose_bench.py [--cold]

``--cold`` first removes every ``collapse-watch-test/*`` image and the build cache, so the run
measures what a fresh machine pays (debootstrap, every image). Without it, the run measures a
warm machine: the images exist, and only changed layers are rebuilt. Each phase is timed: the
base image, the python image, ``compose build``, ``up -d`` until every health check passes, and
``down``. Uses the helpers of ``tests/compose/stack.py``. Needs root and a Docker Engine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from compose import stack as cs  # noqa: E402


def remove_test_images() -> None:
    out = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "collapse-watch-test/*"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if out:
        subprocess.run(["docker", "rmi", "-f", *out], capture_output=True, check=False)
    subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True, check=False)
    subprocess.run(["docker", "image", "prune", "-f"], capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="remove the test images and build cache first")
    args = parser.parse_args()
    reason = cs.ensure_docker()
    if reason:
        sys.exit(f"no Docker Engine: {reason}")
    wheels = cs.find_links_dir()
    if wheels is None:
        sys.exit(f"no local wheel {cs.TORCH_WHEEL} (set COLLAPSE_WATCH_WHEELS)")
    if args.cold:
        remove_test_images()

    timings: list[tuple[str, float]] = []

    def timed(name: str, fn, *a, **kw):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        result = fn(*a, **kw)
        timings.append((name, time.perf_counter() - start))
        print(f"{name}: {timings[-1][1]:.0f} s", flush=True)
        return result

    gateway = timed("docker bridge", cs.bridge_gateway)
    timed("base image (debootstrap + import)", cs.ensure_base_image)
    timed("python image", cs.ensure_python_image)
    work = ROOT / ".cache" / "compose-bench"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    (work / "collector.yml").write_text(
        "models:\n  - {name: bench, source: {type: jsonl, path: /var/log/collapse-watch/*.jsonl}, "
        "schedule: {every: 1m}}\n"
    )
    for sub, name in (("prometheus", "prometheus.yml"), ("alertmanager", "alertmanager.yml")):
        (work / sub).mkdir(exist_ok=True)
        src = ROOT / "dashboards" / sub / name
        (work / sub / name).write_text(src.read_text())
    (work / "prometheus" / "rules").mkdir(exist_ok=True)
    stack = cs.Stack(
        project=f"cwbench{uuid.uuid4().hex[:6]}",
        env=cs.stack_env(work, gateway),
    )
    try:
        with cs.serve_find_links(wheels, gateway) as url:
            stack.env["CW_TEST_FIND_LINKS"] = url
            timed("compose build", stack.compose, "build", *stack.services, timeout=3600)
        start = time.perf_counter()
        stack.compose("up", "-d", *stack.services, timeout=600)
        stack.wait_healthy()
        timings.append(("up -d until healthy", time.perf_counter() - start))
        print(f"up -d until healthy: {timings[-1][1]:.0f} s", flush=True)
    finally:
        timed("down", stack.compose, "down", "--volumes", timeout=600, check=False)
    print("\n| phase | seconds |\n|---|---|")
    for name, seconds in timings:
        print(f"| {name} | {seconds:.0f} |")
    print(f"| total | {sum(s for _, s in timings):.0f} |")


if __name__ == "__main__":
    main()
