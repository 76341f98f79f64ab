"""The CLI at the edges of its environment: the output it writes to, the options it is given.

Found by a fresh-eyes attack after the CLI became a package (issue #21).  Each runs the real
``collapse-watch`` in a subprocess (``python -m collector``), since what is checked is the process's
exit status and what reaches its streams.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from collector.render import cell, visible
from collector.vocabulary import EXIT_CODES, EXIT_IOERR, EXIT_USAGE
from tests.cli_process import cli

DATA = Path(__file__).parent / "data"
A, B = str(DATA / "series_v1.jsonl"), str(DATA / "series_v3.jsonl")
LEXICAL = ("--no-embeddings", "--metrics", "distinct_2,self_bleu")


@pytest.mark.parametrize("columns", ["0", "-1", "abc", "99999999999"])
def test_a_bad_columns_variable_hides_nothing(columns: str) -> None:
    proc = cli("compare", A, A, *LEXICAL, "--json", env={"COLUMNS": columns})
    assert proc.returncode == EXIT_CODES["ok"], proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "ok"


def test_a_reader_that_leaves_early_is_an_output_error_never_a_verdict() -> None:
    """`compare A A | head -1`: the verdict is ok, the output is cut; exit 74, not click's 1 (which a
    caller reads as collapse suspected)."""
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "compare", A, A, *LEXICAL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader leaves after one line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_IOERR, stderr
    assert "cannot write to standard output" in stderr


def test_a_reader_that_leaves_a_large_json_document_early_is_an_output_error(tmp_path: Path) -> None:
    """`compare --json | head -c 10` on a document larger than a pipe's buffer (64 kB): the first
    write fills the pipe, the reader leaves; exit 74, never 1 (found by the #25 attack)."""
    rows = [
        {
            "prompt": f"prompt {p} " + "x" * 2000,
            "output": f"answer {p} {i} " + " ".join(f"w{(p + i * j) % 37}" for j in range(15)),
        }
        for p in range(40)
        for i in range(4)
    ]
    path, same = tmp_path / "big.jsonl", tmp_path / "collapsed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    collapsed = [{**r, "output": "one answer"} for r in rows]  # every prompt named, with its 2 kB text
    same.write_text("".join(json.dumps(r) + "\n" for r in collapsed), encoding="utf-8")
    full = cli("compare", str(path), str(same), "--no-embeddings", "--json")
    assert len(full.stdout.encode()) > 65536, len(full.stdout)
    for command in (["compare", str(path), str(same)],):
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector", *command, "--no-embeddings", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.read(10)
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == EXIT_IOERR, (command[0], stderr)
        assert "cannot write to standard output" in stderr


def test_a_non_blocking_stdout_gets_the_whole_document(tmp_path: Path) -> None:
    """A stdout inherited non-blocking (from a Node or CI parent) with a reader that keeps reading:
    a 160 kB document arrives whole with the verdict's code, not cut at the pipe's 64 kB with 74
    ("would block" is not "the reader left"; found by the #25 re-attack)."""
    import fcntl
    import threading

    rows = [
        {
            "prompt": f"prompt {p} " + "x" * 2000,
            "output": f"answer {p} {i} " + " ".join(f"w{(p + i * j) % 37}" for j in range(15)),
        }
        for p in range(60)
        for i in range(4)
    ]
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    expected = cli("compare", str(path), str(path), "--no-embeddings", "--json")
    assert len(expected.stdout.encode()) > 2 * 65536
    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETFL, fcntl.fcntl(write, fcntl.F_GETFL) | os.O_NONBLOCK)
    got = bytearray()

    def drain() -> None:
        while chunk := os.read(read, 4096):
            got.extend(chunk)
            time.sleep(0.001)  # a slow reader: the pipe fills again and again

    import time

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "collector", "compare", str(path), str(path), "--no-embeddings", "--json"],
            stdout=write,
            stderr=subprocess.PIPE,
            check=False,
            timeout=300,
        )
    finally:
        os.close(write)
        reader.join(timeout=60)
        os.close(read)
    assert proc.returncode == expected.returncode, proc.stderr
    assert got.decode() == expected.stdout


def test_a_non_blocking_socket_whose_peer_stops_reading_is_an_output_error() -> None:
    """stdout a non-blocking socket whose peer shuts its reading side but keeps the socket open:
    the kernel never reports it writable, so an untimed wait hung for ever; 74 now, as with a
    blocking one (found by the #25 re-attack)."""
    import socket
    import time

    ours, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    theirs.setblocking(False)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector",
            "compare",
            A,
            str(DATA / "series_v4.jsonl"),
            "--no-embeddings",
            "--json",
        ],
        stdout=theirs.fileno(),
        stderr=subprocess.PIPE,
    )
    theirs.close()
    try:
        time.sleep(2)
        ours.shutdown(socket.SHUT_RD)
        stderr = proc.communicate(timeout=60)[1].decode()
    finally:
        proc.kill()
        ours.close()
    assert proc.returncode == EXIT_IOERR and "cannot write to standard output" in stderr, (
        proc.returncode,
        stderr,
    )


def test_a_full_disk_and_a_closed_stdout_are_output_errors() -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "collector", "compare", A, A, *LEXICAL],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert proc.returncode == EXIT_IOERR and "No space left" in proc.stderr
    closed = subprocess.run(
        [sys.executable, "-m", "collector", "--version"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        preexec_fn=lambda: os.close(1),
    )
    assert closed.returncode == EXIT_IOERR and "standard output is closed" in closed.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("compare", A, A, *LEXICAL), EXIT_CODES["ok"]),
        (("compare", A, B, "--metrics", ","), EXIT_USAGE),
        (("compare", A, "/nonexistent.jsonl", *LEXICAL), EXIT_USAGE),
    ],
    ids=["verdict", "usage-error", "missing-file"],
)
@pytest.mark.parametrize("stderr", ["full-disk", "closed-pipe"])
def test_a_broken_standard_error_never_changes_the_exit_code(args, code, stderr: str) -> None:
    """`2>/dev/full`, or stderr into a pipe whose reader has left: the messages are lost, the exit
    code is the command's own (click's 1 would read as collapse suspected; found by the #25 attack)."""
    if stderr == "full-disk":
        target = os.open("/dev/full", os.O_WRONLY)
    else:
        read, target = os.pipe()
        os.close(read)  # the reader left before anything was written
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "collector", *args],
            stdout=subprocess.DEVNULL,
            stderr=target,
            check=False,
            timeout=300,
        )
    finally:
        os.close(target)
    assert proc.returncode == code


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "utf-8"])
def test_json_is_valid_whatever_the_output_encoding(tmp_path: Path, encoding: str) -> None:
    """`PYTHONIOENCODING=ascii` or a latin-1 locale: a prompt with é, an emoji and a bidi control
    still gives a document that parses to the same strings (eight outputs: inconclusive is fine)."""
    prompt = "café 🙂 \u202e ünï"
    rows = [
        {"prompt": prompt, "output": f"answer {i} " + " ".join(f"w{i * j % 11}" for j in range(9))}
        for i in range(8)
    ]
    path = tmp_path / "é.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "collector", "compare", str(path), str(path), *LEXICAL, "--json"],
        capture_output=True,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": encoding},
        timeout=300,
    )
    assert proc.returncode in (EXIT_CODES["ok"], EXIT_CODES["inconclusive"]), proc.stderr
    document = json.loads(proc.stdout.decode(encoding))
    assert prompt in json.dumps(document, ensure_ascii=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--metrics", ","), "names no metric"),
        (("--metrics", ""), "names no metric"),
        (("--metrics", "distinct_2,distinct_2"), "more than once"),
        (("--no-embeddings", "--metrics", "vendi_score"), "conflicts with the embedding metrics"),
        (("--no-embeddings", "--max-scored-samples", "10"), "bounds a stored side"),
    ],
)
def test_compare_refuses_options_that_would_judge_nothing_or_be_ignored(
    args: tuple[str, ...], message: str
) -> None:
    proc = cli("compare", A, B, *args)
    assert proc.returncode == EXIT_USAGE and message in proc.stderr, (proc.returncode, proc.stderr)


def test_an_explicitly_empty_label_is_refused_not_replaced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    proc = cli(
        "score", B, "--store", "--model", "m", "--version", "", "--no-embeddings", "--database-url", url
    )
    assert proc.returncode == EXIT_USAGE and "--version is empty" in proc.stderr
    assert not (tmp_path / "h.db").exists()  # refused before anything was opened


def test_a_config_whose_alias_contains_itself_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "loop.yml"
    path.write_text("a: &a [*a]\n", encoding="utf-8")
    proc = cli("config", "check", str(path))
    assert proc.returncode == EXIT_USAGE and "alias refers to itself" in proc.stdout + proc.stderr


def test_reading_a_revision_never_creates_the_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for args in (("db", "current"), ("db", "downgrade", "base")):
        proc = cli(*args, "--database-url", f"sqlite:///{missing}")
        assert proc.returncode == EXIT_USAGE and "no database at" in proc.stderr
    assert not missing.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("token", ["S3cretTokenValue\n", "S3cret\nTokenValue", " S3cretTokenValue\r\n"])
def test_a_grafana_token_never_reaches_the_error_message(token: str) -> None:
    """Nothing listens on the port (Grafana cannot run here): the push fails, naming the URL, and
    no 6-character run of the token is echoed, whatever its stray whitespace made the header do."""
    url = f"http://127.0.0.1:{_free_port()}"
    proc = cli("dashboards", "push", "--grafana-url", url, env={"GRAFANA_TOKEN": token})
    assert proc.returncode == 1 and url in proc.stderr
    secret = token.replace("\n", "").replace("\r", "").strip()
    runs = {secret[i : i + 6] for i in range(len(secret) - 5)}
    assert not any(r in proc.stderr + proc.stdout for r in runs), proc.stderr


def test_a_grafana_url_with_spaces_is_a_usage_error() -> None:
    proc = cli("dashboards", "push", "--grafana-url", "not a url", env={"GRAFANA_TOKEN": "t"})
    assert proc.returncode == EXIT_USAGE and "expected http(s)://HOST" in proc.stderr


def test_bidi_separators_and_newlines_are_shown_not_obeyed() -> None:
    assert visible("v\u202e9\u2066x\u2028y\u200bz\ufeff") == "v\\u202e9\\u2066x\\u2028y\\u200bz\\ufeff"
    assert visible("👨\u200d👩") == "👨\u200d👩"  # the joiner of emoji sequences stays
    assert cell("row\nsplit").plain == "row\\nsplit"  # one table row per record


def test_json_output_off_a_terminal_is_valid_json_with_the_same_strings(tmp_path: Path) -> None:
    """`--json` into a pipe: prompts carrying C1 controls (NEL, CSI), DEL, bidi overrides, a
    zero-width space, ESC and emoji come back as the same strings from a document every JSON
    parser reads (each escaped as ``\\uNNNN``), and none reaches the stream raw."""
    hostile = 'q \x85 \x9b2J \x7f \u202eevil \u200b \x1b[31m 👨\u200d👩 "quoted" [x]'
    rows = [
        {
            "prompt": f"{hostile} {p}",
            "output": f"answer {p} {i} " + " ".join(f"w{(p * 7 + i * j) % 50}" for j in range(12)),
        }
        for p in range(12)
        for i in range(5)
    ]
    path, same = tmp_path / "hostile.jsonl", tmp_path / "collapsed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    collapsed = [{**r, "output": "the same answer every time"} for r in rows]
    same.write_text("".join(json.dumps(r) + "\n" for r in collapsed), encoding="utf-8")
    proc = cli("compare", str(path), str(same), "--no-embeddings", "--json")
    assert proc.returncode in (EXIT_CODES["collapse_suspected"], EXIT_CODES["watch"]), proc.stderr
    for raw in ("\x85", "\x9b", "\x7f", "\u202e", "\u200b", "\x1b"):
        assert raw not in proc.stdout
    strings: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            strings.append(node)
        elif isinstance(node, dict):
            list(map(walk, node.values()))
        elif isinstance(node, list):
            list(map(walk, node))

    walk(json.loads(proc.stdout))
    assert any(s.startswith(hostile) for s in strings), "the collapsed prompts are named, intact"
    score = cli("score", str(path), "--no-embeddings", "--json")
    assert score.returncode == 0 and json.loads(score.stdout)["n_samples"] == 60, score.stderr


def test_ctrl_c_mid_comparison_exits_130_saying_so(tmp_path: Path) -> None:
    """SIGINT to the process group while the comparison runs (its second process is up): exit 130
    and one line saying so (typer ended it silently), never a verdict's code; no child left."""
    import signal
    import time

    from collector import parallel

    if not parallel.can_fork(2):
        pytest.skip("needs the second process as the sign that the comparison runs")
    rows = [
        {"prompt": f"p{p}", "output": " ".join(f"w{(p * 7 + i * 13 + j * j) % 301}" for j in range(60))}
        for p in range(600)
        for i in range(8)
    ]
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "compare", str(path), str(path), "--no-embeddings"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    child = None
    for _ in range(1200):
        found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if found or proc.poll() is not None:
            child = found[0] if found else None
            break
        time.sleep(0.05)
    assert child is not None, "the comparison ended before its second process was seen"
    os.killpg(proc.pid, signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 130 and stderr.strip().endswith("interrupted"), (proc.returncode, stderr)
    time.sleep(0.5)
    assert (
        not Path(f"/proc/{child}").exists()
        or "Z" in Path(f"/proc/{child}/stat").read_text().split(")")[-1][:3]
    )
