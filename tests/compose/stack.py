"""Running docker-compose.yml on a real Docker Engine with images built here (tests/test_compose_stack.py).

Docker Hub is not reachable from these machines, so every image comes from a local base:
``debootstrap --variant=minbase bookworm`` from the machine's Debian mirror, then ``docker import``
(``ensure_base_image``; reused once built). ``docker-compose.test.yml`` beside this file builds
PostgreSQL, Prometheus and Alertmanager from Debian packages on that base and the collector from
the project's own Dockerfile, whose CPU torch comes from a local pip find-links served to the build
over the Docker bridge (``serve_find_links``). ``ensure_docker`` starts ``dockerd`` when it is
installed but not running and says why when it cannot.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OVERRIDE = HERE / "docker-compose.test.yml"
BASE_IMAGE = "collapse-watch-test/base:bookworm"
PYTHON_IMAGE = "collapse-watch-test/python:bookworm"
TORCH_WHEEL = "torch-2.13.0+cpu-*.whl"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
FIND_LINKS_PORT = 47391


def _run(args: Sequence[str], timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False, **kw)  # type: ignore[call-overload]


def docker_ready() -> bool:
    try:
        return _run(["docker", "info"], timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_docker(wait: float = 60.0) -> str | None:
    """None once a Docker Engine answers (started here as root if need be), else why not."""
    if shutil.which("docker") is None:
        return "no docker client (apt-get install docker.io; .ci/run installs it)"
    if docker_ready():
        return None
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        return "docker client present but no dockerd to start (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "dockerd is not running and starting it needs root"
    log = Path(tempfile.gettempdir()) / "collapse-watch-dockerd.log"
    subprocess.Popen(
        [dockerd, "--storage-driver=overlay2"],
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # outlives the test: CI and later runs reuse it and its image cache
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if docker_ready():
            return None
        time.sleep(1)
    tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
    return f"dockerd did not come up within {wait:.0f}s; its log ({log}) ends: {tail}"


@functools.cache
def compose_command() -> tuple[str, ...] | None:
    """``docker compose`` (v2) when the plugin is there, else Debian's ``docker-compose`` (1.29)."""
    if _run(["docker", "compose", "version"], timeout=30).returncode == 0:
        return ("docker", "compose")
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    return None


def image_exists(tag: str) -> bool:
    return _run(["docker", "image", "inspect", tag], timeout=30).returncode == 0


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources), else deb.debian.org."""
    sources = [*sorted(Path("/etc/apt").glob("sources.list.d/*.sources")), Path("/etc/apt/sources.list")]
    for path in sources:
        text = path.read_text(errors="replace") if path.is_file() else ""
        for match in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            uri = match.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    return DEFAULT_MIRROR


def ensure_base_image(tag: str = BASE_IMAGE, timeout: float = 900) -> None:
    """Build ``tag`` (Debian bookworm minbase) with debootstrap + docker import unless it exists."""
    if image_exists(tag):
        return
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise RuntimeError("debootstrap not installed (apt-get install debootstrap; .ci/run installs it)")
    with tempfile.TemporaryDirectory(prefix="cw-rootfs-") as root:
        res = _run([debootstrap, "--variant=minbase", "bookworm", root, debian_mirror()], timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {res.stdout[-1500:]}{res.stderr[-1500:]}")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imp = _run(["docker", "import", "-", tag], timeout=timeout, stdin=tar.stdout)
        tar.wait()
        if imp.returncode != 0:
            raise RuntimeError(f"docker import of the debootstrap root failed: {imp.stderr}")


def host_ca_bundle() -> Path:
    """The CA bundle this host's pip trusts (it may include a TLS-inspecting proxy's CA)."""
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return Path("/etc/ssl/certs/ca-certificates.crt")


def ensure_python_image(tag: str = PYTHON_IMAGE, base: str = BASE_IMAGE, timeout: float = 900) -> None:
    """Build ``tag`` (python3 + venv on ``base``, trusting the host's CAs) unless it exists."""
    if image_exists(tag):
        return
    with tempfile.TemporaryDirectory(prefix="cw-python-") as context:
        shutil.copy(HERE / "python.Dockerfile", Path(context) / "Dockerfile")
        shutil.copy(host_ca_bundle(), Path(context) / "ca-certificates.crt")
        res = _run(
            ["docker", "build", "-q", "-t", tag, "--build-arg", f"BASE_IMAGE={base}", context],
            timeout=timeout,
        )
    if res.returncode != 0:
        raise RuntimeError(f"docker build of {tag} failed: {res.stdout[-2000:]}{res.stderr[-2000:]}")


def find_links_dir() -> Path | None:
    """A folder holding the CPU torch wheel the project pins: $COLLAPSE_WATCH_WHEELS, pip's
    configured find-links, or /opt/wheels."""
    candidates = [os.environ.get("COLLAPSE_WATCH_WHEELS", "")]
    res = _run(["pip", "config", "list"], timeout=30) if shutil.which("pip") else None
    for line in (res.stdout if res else "").splitlines():
        if "find-links" in line:
            candidates += line.split("=", 1)[1].strip().strip("'\"").split()
    candidates.append("/opt/wheels")
    for folder in filter(None, candidates):
        path = Path(folder)
        if path.is_dir() and any(path.glob(TORCH_WHEEL)):
            return path
    return None


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge (what ``host-gateway`` resolves to)."""
    res = _run(["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"])
    if res.returncode != 0:
        raise RuntimeError(f"cannot inspect the docker bridge network: {res.stderr}")
    config = json.loads(res.stdout)[0]
    # dockerd leaves Gateway out when it is the default: the subnet's first host.
    return str(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def stack_env(work: Path, gateway: str) -> dict[str, str]:
    """The compose override's variables: the local base images, the host the containers trust for
    packages, the working directory, and every port published on loopback only, each a free one."""
    return {
        "CW_TEST_BASE_IMAGE": BASE_IMAGE,
        "CW_TEST_PYTHON_IMAGE": PYTHON_IMAGE,
        "CW_TEST_TRUSTED_HOST": gateway,
        "CW_TEST_DIR": str(work),
        "COLLAPSE_WATCH_BIND": "127.0.0.1",
        **{
            f"COLLAPSE_WATCH_{name}_PORT": ""
            for name in ("EXPORTER", "PROMETHEUS", "ALERTMANAGER", "GRAFANA")
        },
    }


@contextmanager
def serve_find_links(folder: Path, host: str, port: int = FIND_LINKS_PORT) -> Iterator[str]:
    """Serve ``folder`` (a pip find-links) on ``host`` (the bridge gateway) for builds; yields its URL.

    The URL is a build argument, and a build argument's value is part of the layer cache key: on
    the fixed ``port`` the torch and dependency layers are reused from one run to the next. When
    that port is taken, any free port serves (correct, but those layers are rebuilt)."""
    handler = functools.partial(_Quiet, directory=str(folder))
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError:
        server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Stack:
    """One compose project: the shipped docker-compose.yml plus the test override."""

    project: str
    env: dict[str, str]
    services: tuple[str, ...] = ("postgres", "alertmanager", "prometheus", "collector")
    command: tuple[str, ...] = field(default_factory=lambda: compose_command() or ("docker-compose",))

    def compose(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            *self.command,
            "--project-name",
            self.project,
            "--project-directory",
            str(REPO),
            "-f",
            str(REPO / "docker-compose.yml"),
            "-f",
            str(OVERRIDE),
            *args,
        ]
        res = _run(cmd, timeout=timeout, cwd=REPO, env={**os.environ, **self.env})
        if check and res.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd[len(self.command) :])} failed ({res.returncode}): {res.stderr[-3000:]}"
            )
        return res

    def container(self, service: str) -> str:
        """The id of ``service``'s container (looked up afresh: down/up replaces containers)."""
        cid = _run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}",
             "--filter", f"label=com.docker.compose.service={service}"],
        ).stdout.strip()  # fmt: skip
        if not cid:
            raise RuntimeError(f"no container for {service}")
        return cid

    def health(self, service: str) -> str:
        res = _run(["docker", "inspect", "--format", "{{json .State}}", self.container(service)])
        state = json.loads(res.stdout)
        return str(state.get("Health", {}).get("Status") or state.get("Status"))

    def wait_healthy(self, services: Sequence[str] | None = None, timeout: float = 240) -> None:
        pending = list(services or self.services)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            pending = [s for s in pending if self.health(s) != "healthy"]
            time.sleep(1)
        if pending:
            logs = {s: self.compose("logs", "--tail", "30", s, check=False).stdout for s in pending}
            raise AssertionError(f"not healthy after {timeout:.0f}s: {pending}; logs: {logs}")

    def published(self, service: str, port: int) -> str:
        """``host:port`` where ``service``'s container ``port`` is published."""
        out = self.compose("port", service, str(port)).stdout.strip()
        host, _, published = out.rpartition(":")
        return f"{host}:{published}"

    def psql(self, sql: str) -> list[list[str]]:
        """Rows of ``sql`` run by ``psql`` inside the PostgreSQL container (tab-separated, no header).

        ``docker exec`` on the container, not ``compose exec``: a poll takes a fraction of a second."""
        res = _run(
            ["docker", "exec", self.container("postgres"), "psql", "-U", "collapse", "-d", "collapse_watch",
             "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        )  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"psql failed: {res.stderr}")
        return [line.split("\t") for line in res.stdout.splitlines() if line]
