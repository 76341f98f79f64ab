"""The Kubernetes manifests (deploy/kubernetes/), checked offline: no cluster can run here.

* ``kubectl kustomize`` renders the base and every overlay (skipped, saying so, only where kubectl
  is absent: it ships with the machine image CI runs on; see .ci/run);
* every rendered object validates against the Kubernetes OpenAPI schemas (``kubernetes-validate``,
  strict: an unknown field is an error) of the oldest and newest Kubernetes release claimed, and
  the Prometheus Operator objects against the operator's CRD schemas (vendored and pinned in
  tests/data/schemas/, closed the way ``kubectl --validate=strict`` closes them);
* the generated PrometheusRule and dashboard ConfigMaps equal a fresh ``scripts/render_k8s.py``
  render, the rules inside equal the shipped rules file and pass ``promtool check rules``, and the
  dashboards equal the shipped JSON;
* the containers match the Dockerfile (user, port, health paths) and the collector's own config.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from file_module import load_module
from ops_stack import binaries

from collector.config import parse_config
from collector.readout.health import HEALTH_PATHS

ROOT = Path(__file__).resolve().parents[1]
KUBE = ROOT / "deploy" / "kubernetes"
OVERLAYS = {
    "base": KUBE / "base",
    "embedding-server": KUBE / "overlays" / "embedding-server",
    "example": KUBE / "overlays" / "example",
}
# What an overlay of the user's makes of the base and the components: written to a scratch
# kustomization (namespace and labels as the shipped overlays set them) and rendered like the rest.
COMPOSED = {
    "base+tls": ("base", ["tls"]),
    "embedding-server+tls+example-secrets": ("overlays/embedding-server", ["tls", "example-secrets"]),
}
RENDERED = [*OVERLAYS, *COMPOSED]
ALERTMANAGER = KUBE / "alertmanager" / "alertmanager.yml"
RULES = ROOT / "dashboards" / "prometheus" / "rules" / "collapse-watch.rules.yml"
DASHBOARDS = sorted((ROOT / "dashboards" / "grafana" / "dashboards").glob("*.json"))
SCHEMAS = Path(__file__).resolve().parent / "data" / "schemas"
CRD_SCHEMAS = {  # kind -> the vendored openAPIV3Schema (monitoring.coreos.com/v1)
    "ServiceMonitor": SCHEMAS / "servicemonitor.v0.84.1.yaml",
    "PrometheusRule": SCHEMAS / "prometheusrule.v0.82.2.yaml",
}
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())  # oldest claimed, newest known
RENDER = load_module(ROOT / "scripts" / "render_k8s.py")


# --- rendering ---------------------------------------------------------------------------------


def _composed(name: str) -> Path:
    """A scratch kustomization: ``COMPOSED[name]``'s resource plus its components (relative paths:
    kustomize refuses absolute ones)."""
    resource, components = COMPOSED[name]
    folder = Path(tempfile.mkdtemp(prefix="cw-kustomize-"))
    up = Path(os.path.relpath(KUBE, folder))
    doc = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "collapse-watch",
        "labels": [{"pairs": {"app.kubernetes.io/part-of": "collapse-watch"}}],
        "resources": [str(up / resource)],
        "components": [str(up / "components" / c) for c in components],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    return folder


@cache
def _render(name: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: cannot render the kustomizations (it ships with the CI image)")
    folder = OVERLAYS[name] if name in OVERLAYS else _composed(name)
    res = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 0, f"kubectl kustomize {name} ({folder}) failed:\n{res.stderr}"
    return tuple(d for d in yaml.safe_load_all(res.stdout) if d)


def _one(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


@pytest.mark.parametrize("name", RENDERED)
def test_every_kustomization_renders_into_one_namespace(name: str) -> None:
    docs = _render(name)
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Job",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
    } <= kinds
    assert {"NetworkPolicy", "PodDisruptionBudget", "ServiceAccount", "Namespace"} <= kinds
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "collapse-watch", d["metadata"]["name"]
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "collapse-watch"


# --- schemas -----------------------------------------------------------------------------------


def _closed(schema: Any) -> Any:
    """The schema with every object that lists its properties closed to others, as the API server
    treats unknown fields under ``kubectl --validate=strict`` (and Go's ``^(?i)`` written as
    Python's ``(?i)^``: Python's ``re`` takes global flags only at the start)."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if isinstance(out.get("pattern"), str) and out["pattern"].startswith("^(?i)"):
            out["pattern"] = "(?i)^" + out["pattern"][5:]
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(x) for x in schema]
    return schema


@cache
def _crd_validator(kind: str) -> jsonschema.Draft7Validator:
    schema = _closed(yaml.safe_load(CRD_SCHEMAS[kind].read_text())["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Why the API server would refuse ``obj`` (by schema), for every claimed Kubernetes version."""
    if obj["apiVersion"] == "monitoring.coreos.com/v1":
        return [
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _crd_validator(obj["kind"]).iter_errors(obj)
        ]
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{version}: {'.'.join(map(str, exc.path))}: {exc.message}")
    return errors


@pytest.mark.parametrize("name", RENDERED)
def test_every_object_validates_against_its_schema(name: str) -> None:
    failures = {
        f"{d['kind']}/{d['metadata']['name']}": errs for d in _render(name) if (errs := schema_errors(d))
    }
    assert not failures, failures


BROKEN = {
    "unknown container field": ("Deployment", "collapse-watch", ["spec", "template", "spec", "containers", 0, "ports", 0, "containerport"], 9108),
    "replicas as a string": ("Deployment", "collapse-watch", ["spec", "replicas"], "2"),
    "unknown ServiceMonitor endpoint field": ("ServiceMonitor", "collapse-watch", ["spec", "endpoints", 0, "intervall"], "30s"),
    "ServiceMonitor scheme not an enum": ("ServiceMonitor", "collapse-watch", ["spec", "endpoints", 0, "scheme"], "tcp"),
    "PrometheusRule rule without expr": ("PrometheusRule", "collapse-watch-rules", ["spec", "groups", 0, "rules", 0, "expr"], None),
    "PrometheusRule for not a duration": ("PrometheusRule", "collapse-watch-rules", ["spec", "groups", 1, "rules", 0, "for"], "5 minutes"),
}  # fmt: skip


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_object_is_rejected(case: str) -> None:
    kind, name, path, value = BROKEN[case]
    obj = copy.deepcopy(_one(_render("base"), kind, name))
    assert schema_errors(obj) == []
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    assert schema_errors(obj), f"{case} passed the schema"


# --- generated objects equal the shipped files ---------------------------------------------------


def test_generated_manifests_equal_a_fresh_render() -> None:
    assert RENDER.stale() == [], "deploy/kubernetes/base/generated is stale: run python scripts/render_k8s.py"


def test_prometheusrule_holds_the_shipped_rules_and_passes_promtool(tmp_path: Path) -> None:
    rule = _one(_render("base"), "PrometheusRule", "collapse-watch-rules")
    shipped = yaml.safe_load(RULES.read_text())
    assert rule["spec"]["groups"] == shipped["groups"]
    promtool = binaries("promtool")["promtool"]
    path = tmp_path / "from-prometheusrule.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    res = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    n_rules = sum(len(g["rules"]) for g in shipped["groups"])
    assert f"{n_rules} rules found" in res.stdout + res.stderr


def test_dashboard_configmaps_equal_the_shipped_json() -> None:
    maps = [
        d
        for d in _render("base")
        if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]
    ]
    assert len(maps) == len(DASHBOARDS) == 3
    by_file = {key: (m, text) for m in maps for key, text in m["data"].items()}
    for path in DASHBOARDS:
        config_map, text = by_file[path.name]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's label
        assert text == path.read_text()
        assert json.loads(text)["uid"] == json.loads(path.read_text())["uid"]


# --- the containers match the image and the collector ----------------------------------------------


@cache
def dockerfile() -> dict[str, Any]:
    """What the runtime stage of the Dockerfile fixes: the user's uid, the port, the health check."""
    text = (ROOT / "Dockerfile").read_text()
    runtime = text.rsplit("\nFROM ", 1)[1]
    user = re.search(r"^USER (\S+)", runtime, re.M).group(1)  # type: ignore[union-attr]
    uid = int(re.search(rf"useradd [^\n]*--uid (\d+) {user}\b", runtime).group(1))  # type: ignore[union-attr]
    check = re.search(r"^HEALTHCHECK [^\n]*\\\n\s+CMD (\[.*\])$", runtime, re.M).group(1)  # type: ignore[union-attr]
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
    return {
        "uid": uid,
        "expose": int(re.search(r"^EXPOSE (\d+)", runtime, re.M).group(1)),  # type: ignore[union-attr]
        "workdir": re.search(r"^WORKDIR (\S+)", runtime, re.M).group(1),  # type: ignore[union-attr]
        "healthcheck": json.loads(check),
        "health_port": int(url.group(1)),  # type: ignore[union-attr]
        "health_path": url.group(2),  # type: ignore[union-attr]
    }


def test_the_image_and_compose_check_readiness() -> None:
    image = dockerfile()
    assert image["health_path"] == "/readyz" and image["health_port"] == image["expose"] == 9108
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["collector"]
    assert compose["healthcheck"]["test"] == ["CMD", *image["healthcheck"][0:]]


PODS = {  # (kind, name) -> the container that runs the image
    ("Deployment", "collapse-watch"): "collector",
    ("Deployment", "collapse-watch-exporter"): "exporter",
    ("Job", "collapse-watch-migrate"): "migrate",
}


@pytest.mark.parametrize("name", RENDERED)
def test_containers_run_as_the_image_user_read_only_with_probes_on_the_health_paths(name: str) -> None:
    image = dockerfile()
    docs = _render(name)
    for (kind, obj_name), container_name in PODS.items():
        pod = _one(docs, kind, obj_name)["spec"]["template"]["spec"]
        container = next(c for c in pod["containers"] if c["name"] == container_name)
        assert pod["securityContext"]["runAsUser"] == image["uid"] and pod["securityContext"]["runAsNonRoot"]
        assert pod["automountServiceAccountToken"] is False
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"]["drop"] == ["ALL"]
        assert container["image"].startswith("collapse-watch:")
        assert {"requests", "limits"} <= set(container["resources"]) and container["resources"]["limits"][
            "memory"
        ]
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        assert mounts["/tmp"] in empty_dirs  # the only writable paths are emptyDirs
        if kind == "Job":
            continue
        (port,) = container["ports"]
        assert port["containerPort"] == image["expose"]
        # with components/tls the listener speaks TLS only: every probe must say HTTPS
        scheme = {"scheme": "HTTPS"} if "tls" in name else {}
        assert container["readinessProbe"]["httpGet"] == {
            "path": image["health_path"],
            "port": port["name"],
            **scheme,
        }
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"], **scheme}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"], **scheme}
        assert {"/healthz", image["health_path"]} <= set(HEALTH_PATHS)
    collector = _one(docs, "Deployment", "collapse-watch")
    pod = collector["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in _container(collector, "collector")["volumeMounts"]}
    assert mounts[image["workdir"]] in {v["name"] for v in pod["volumes"] if "emptyDir" in v}


def _config(docs: tuple[dict[str, Any], ...]) -> Any:
    (config_map,) = [d for d in docs if d["metadata"]["name"].startswith("collapse-watch-config-")]
    return parse_config(config_map["data"]["config.yml"], source=config_map["metadata"]["name"])


@pytest.mark.parametrize("name", RENDERED)
def test_config_service_and_servicemonitor_agree(name: str) -> None:
    docs = _render(name)
    cfg = _config(docs)
    collector, exporter = (
        _one(docs, "Deployment", "collapse-watch"),
        _one(docs, "Deployment", "collapse-watch-exporter"),
    )
    assert collector["spec"]["replicas"] == 2  # leases make two safe (docs/replicas.md)
    assert exporter["spec"]["replicas"] == 1  # every series once
    # the config the pods mount is this ConfigMap, serving on every interface of the pod
    for deployment, container in ((collector, "collector"), (exporter, "exporter")):
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        mount = next(
            m
            for m in _container(deployment, container)["volumeMounts"]
            if m["mountPath"] == "/etc/collapse-watch/config.yml"
        )
        assert volumes[mount["name"]]["configMap"]["name"] == next(
            d["metadata"]["name"] for d in docs if d["metadata"]["name"].startswith("collapse-watch-config-")
        )
    assert cfg.metrics_host == "0.0.0.0" and cfg.metrics_port == dockerfile()["expose"]
    assert "--config" in _container(collector, "collector")["command"]
    assert _container(exporter, "exporter")["command"][:2] == ["collapse-watch", "serve-metrics"]
    # Service -> exporter pods; ServiceMonitor -> Service port; job label = Service name = the rules' job
    service = _one(docs, "Service", "collapse-watch")
    pod_labels = exporter["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        not service["spec"]["selector"].items() <= collector["spec"]["template"]["metadata"]["labels"].items()
    )
    monitor = _one(docs, "ServiceMonitor", "collapse-watch")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (
        endpoint["port"] in {p["name"] for p in service["spec"]["ports"]} and endpoint["path"] == "/metrics"
    )
    prometheus = yaml.safe_load((ROOT / "dashboards" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == service["metadata"]["name"])
    assert endpoint["interval"] == job["scrape_interval"] and 'up{job="collapse-watch"}' in RULES.read_text()
    # the PodDisruptionBudget keeps one collector through a drain; the NetworkPolicy covers every pod
    pdb = _one(docs, "PodDisruptionBudget", "collapse-watch")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"  # unready pods never block a drain
    assert (
        pdb["spec"]["selector"]["matchLabels"].items()
        <= collector["spec"]["template"]["metadata"]["labels"].items()
    )
    policy = _one(docs, "NetworkPolicy", "collapse-watch")
    for deployment in (collector, exporter):
        assert (
            policy["spec"]["podSelector"]["matchLabels"].items()
            <= deployment["spec"]["template"]["metadata"]["labels"].items()
        )


DOCS = ROOT / "docs" / "kubernetes.md"


@pytest.mark.parametrize("name", ["base", "embedding-server", "base+tls"])
def test_the_base_makes_no_secret(name: str) -> None:
    """An apply of the base (or an overlay built on it without components/example-secrets) must never
    overwrite the Secrets the user created: it renders none, placeholder or other."""
    secrets = [d["metadata"]["name"] for d in _render(name) if d["kind"] == "Secret"]
    assert secrets == []
    assert "CHANGE-ME" not in json.dumps(_render(name))


def _secret_refs(docs: tuple[dict[str, Any], ...]) -> dict[str, set[str]]:
    """Secret name -> the keys the pods read from it (env, volume items; a whole-Secret volume: '*')."""
    refs: dict[str, set[str]] = {}
    for d in docs:
        if d["kind"] not in ("Deployment", "Job"):
            continue
        pod = d["spec"]["template"]["spec"]
        for c in pod["containers"]:
            for e in c.get("env", []):
                if ref := e.get("valueFrom", {}).get("secretKeyRef"):
                    refs.setdefault(ref["name"], set()).add(ref["key"])
        for v in pod.get("volumes", []):
            if secret := v.get("secret"):
                keys = {i["key"] for i in secret.get("items", [])} or {"*"}
                refs.setdefault(secret["secretName"], set()).update(keys)
    return refs


def _documented_secrets() -> dict[str, set[str]]:
    """Secret name -> keys, from the `kubectl create secret generic` commands of docs/kubernetes.md."""
    text = DOCS.read_text().replace("\\\n", " ")
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        m = re.search(r"kubectl -n collapse-watch create secret generic (\S+)(.*)", line)
        if m:
            keys = re.findall(r"--from-(?:literal|file)=([\w.-]+?)(?:=|\s|$)", m.group(2) + " ")
            out.setdefault(m.group(1), set()).update(keys)
    return out


@pytest.mark.parametrize("name", RENDERED)
def test_the_secrets_the_pods_read_are_the_ones_the_docs_and_the_example_make(name: str) -> None:
    refs = _secret_refs(_render(name))
    assert {"collapse-watch-credentials", "collapse-watch-web-config"} <= set(refs)
    documented = _documented_secrets()
    example = {
        d["metadata"]["name"]: set(d.get("data", {})) | set(d.get("stringData", {}))
        for d in _render("example")
        if d["kind"] == "Secret"
    }
    for secret, keys in refs.items():
        assert secret in documented, f"docs/kubernetes.md does not say how to create Secret {secret}"
        wanted = keys - {"*"}
        assert wanted <= documented[secret], (secret, wanted - documented[secret])
        if secret != "collapse-watch-tls":  # made by cert-manager or by hand, never by an example
            assert wanted <= example[secret], (secret, wanted - example[secret])
    assert (
        documented["collapse-watch-web-config"] == {"web-config.yml"} == example["collapse-watch-web-config"]
    )
    credentials = next(d for d in _render("example") if d["metadata"]["name"] == "collapse-watch-credentials")
    assert "CHANGE-ME" in base64.b64decode(credentials["data"]["database-url"]).decode()  # placeholders


def _mounted_secret(deployment: dict[str, Any], container: str, path: str) -> tuple[str, str]:
    """(Secret name, key) of the file ``path`` in ``container``, through its volume mounts."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in _container(deployment, container)["volumeMounts"]:
        folder = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(folder) and "subPath" not in mount:
            secret = volumes[mount["name"]]["secret"]
            rest = path[len(folder) :]
            items = {i["path"]: i["key"] for i in secret.get("items", [])}
            return secret["secretName"], items[rest] if items else rest
    raise AssertionError(f"{path} is not mounted in {container}")


@pytest.mark.parametrize("name", RENDERED)
def test_the_config_reads_the_web_config_and_the_alert_token_from_the_mounted_secrets(name: str) -> None:
    """The config's web_config_file and alert_receiver.bearer_token_file are files of the Secrets,
    mounted in both Deployments (the config is shared, and `run` reads the token at start too)."""
    docs = _render(name)
    cfg = _config(docs)
    assert cfg.web_config_file and cfg.alert_receiver.bearer_token_file
    for deployment, container in (("collapse-watch", "collector"), ("collapse-watch-exporter", "exporter")):
        d = _one(docs, "Deployment", deployment)
        assert _mounted_secret(d, container, cfg.web_config_file) == (
            "collapse-watch-web-config",
            "web-config.yml",
        )
        assert _mounted_secret(d, container, cfg.alert_receiver.bearer_token_file) == (
            "collapse-watch-credentials",
            "alert-receiver-token",
        )
        if "tls" in name:  # the web config's certificate paths (docs/kubernetes.md) are mounted
            assert _mounted_secret(d, container, "/etc/collapse-watch/tls/tls.crt") == (
                "collapse-watch-tls",
                "tls.crt",
            )
            assert _mounted_secret(d, container, "/etc/collapse-watch/tls/tls.key") == (
                "collapse-watch-tls",
                "tls.key",
            )


@pytest.mark.parametrize("name", [n for n in RENDERED if "tls" in n])
def test_with_tls_prometheus_scrapes_https_and_checks_the_certificate(name: str) -> None:
    docs = _render(name)
    service = _one(docs, "Service", "collapse-watch")
    (endpoint,) = _one(docs, "ServiceMonitor", "collapse-watch")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    tls = endpoint["tlsConfig"]
    assert tls["ca"] == {"secret": {"name": "collapse-watch-tls", "key": "ca.crt"}}
    assert tls["serverName"] == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert not tls.get("insecureSkipVerify")
    web = re.search(r"tls_server_config:\n\s+cert_file: (\S+)\n\s+key_file: (\S+)", DOCS.read_text())
    assert web and web.groups() == ("/etc/collapse-watch/tls/tls.crt", "/etc/collapse-watch/tls/tls.key")


def test_alertmanager_posts_to_the_exporter_with_the_token(tmp_path: Path) -> None:
    """The Alertmanager side (deploy/kubernetes/alertmanager/alertmanager.yml) passes `amtool
    check-config`, posts to the Service's /alerts, and reads its token from the Secret the docs'
    AlertmanagerConfig and `kubectl create secret` name, where the operator mounts Secrets."""
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (Debian: prometheus-alertmanager)")
    res = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr
    docs = _render("base")
    service = _one(docs, "Service", "collapse-watch")
    (port,) = service["spec"]["ports"]
    url = f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port['port']}/alerts"
    am = yaml.safe_load(ALERTMANAGER.read_text())
    (hook,) = next(r for r in am["receivers"] if r["name"] == am["route"]["receiver"])["webhook_configs"]
    assert hook["url"] == url
    auth = hook["http_config"]["authorization"]
    m = re.fullmatch(r"/etc/alertmanager/secrets/([\w.-]+)/([\w.-]+)", auth["credentials_file"])
    assert auth["type"] == "Bearer" and m
    secret, key = m.groups()
    text = DOCS.read_text()
    assert re.search(rf"kubectl -n monitoring create secret generic {secret} \\\n\s+--from-file={key}=", text)
    # the operator's AlertmanagerConfig (docs): in the collapse-watch namespace (it matches that
    # namespace's alerts), reading the very Secret key the collectors mount as their token
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "kind: AlertmanagerConfig" in b]
    amc = yaml.safe_load(block)
    assert amc["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    assert amc["metadata"]["namespace"] == service["metadata"]["namespace"]
    (receiver,) = amc["spec"]["receivers"]
    (webhook,) = receiver["webhookConfigs"]
    assert webhook["url"] == url and amc["spec"]["route"]["receiver"] == receiver["name"]
    assert webhook["sendResolved"] is True
    token = _one(docs, "Deployment", "collapse-watch-exporter")
    bearer = _config(docs).alert_receiver.bearer_token_file
    name, key_ = _mounted_secret(token, "exporter", bearer)
    assert webhook["httpConfig"]["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": name, "key": key_},
    }


def test_embedding_server_overlay_points_the_torch_free_collector_at_infinity() -> None:
    docs = _render("embedding-server")
    cfg = _config(docs)
    service = _one(docs, "Service", "embedding-server")
    (port,) = service["spec"]["ports"]
    assert cfg.embedding_server is not None
    assert cfg.embedding_server.base_url.startswith(f"http://{service['metadata']['name']}:{port['port']}/")
    server = _one(docs, "Deployment", "embedding-server")
    infinity = _container(server, "infinity")
    args = infinity["args"]
    assert args[0] == "v2" and args[args.index("--served-model-name") + 1] == cfg.embedding_server.model
    assert args[args.index("--url-prefix") + 1] == "/v1" and cfg.embedding_server.base_url.endswith("/v1")
    assert int(args[args.index("--port") + 1]) == infinity["ports"][0]["containerPort"]
    for deployment in ("collapse-watch", "collapse-watch-exporter"):
        container = _one(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
        assert container["image"].endswith("-slim")  # built with EXTRAS= (no torch), docs/containers.md
    base_memory = _container(_one(_render("base"), "Deployment", "collapse-watch"), "collector")["resources"]
    slim_memory = _container(_one(docs, "Deployment", "collapse-watch"), "collector")["resources"]
    assert slim_memory["limits"]["memory"] != base_memory["limits"]["memory"]
    # only the collectors may call it
    policy = _one(docs, "NetworkPolicy", "embedding-server")
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    collector_labels = _one(docs, "Deployment", "collapse-watch")["spec"]["template"]["metadata"]["labels"]
    assert source["podSelector"]["matchLabels"].items() <= collector_labels.items()
