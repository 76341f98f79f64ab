"""Upload the generated dashboards to a running Grafana through its HTTP API.

Provisioning from files (``dashboards/grafana/provisioning``) is the default for the compose stack;
this is for a Grafana you do not control the disk of::

    push_dashboards("https://grafana.example.org", token="glsa_...", folder="collapse-watch")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grafana_client import GrafanaApi

from collector.grafana.dashboards import Dashboard, all_dashboards

FOLDER_UID = "collapse-watch"


def _ensure_folder(api: GrafanaApi, title: str, uid: str) -> str:
    """The uid of the folder titled ``title`` (or with uid ``uid``), created when missing."""
    for folder in api.folder.get_all_folders():
        if folder.get("uid") == uid or folder.get("title") == title:
            return str(folder["uid"])
    created = api.folder.create_folder(title, uid=uid)
    return str(created["uid"])


def grafana_base_url(url: str) -> str:
    """``url`` with a scheme: ``127.0.0.1:3999`` becomes ``http://127.0.0.1:3999``; anything but
    http(s), or no host, is a ``ValueError`` that names the URL."""
    from urllib.parse import urlsplit

    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in parts.netloc):
        raise ValueError(f"--grafana-url {url!r}: expected http(s)://HOST[:PORT], e.g. http://localhost:3000")
    return text.rstrip("/")


def push_dashboards(
    grafana_url: str,
    *,
    token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    folder: str = "collapse-watch",
    folder_uid: str = FOLDER_UID,
    dashboards: Mapping[str, Dashboard] | None = None,
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """Create ``folder`` if missing and create-or-overwrite every dashboard in it.

    Authenticate with an API/service-account ``token`` or ``basic_auth=(user, password)``; exactly one
    is required. ``dashboards`` defaults to every generated dashboard. Returns Grafana's answers
    (``uid``, ``url``, ``version``, ...) in upload order; HTTP errors propagate as
    ``grafana_client`` exceptions.
    """
    if (token is None) == (basic_auth is None):
        raise ValueError("give exactly one of token= or basic_auth=(user, password)")
    credential: str | tuple[str, str] = token if token is not None else basic_auth  # type: ignore[assignment]
    api = GrafanaApi.from_url(url=grafana_base_url(grafana_url), credential=credential, timeout=timeout)
    target_uid = _ensure_folder(api, folder, folder_uid)
    results = []
    for dashboard in (dashboards if dashboards is not None else all_dashboards()).values():
        body = dict(dashboard, id=None)
        results.append(
            api.dashboard.update_dashboard(
                {
                    "dashboard": body,
                    "folderUid": target_uid,
                    "overwrite": True,
                    "message": "collapse-watch push",
                }
            )
        )
    return results
