"""`dashboards push`: upload the Grafana dashboards through Grafana's HTTP API."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from collector.cli.app import fail, out

dashboards_app = typer.Typer(help="Grafana dashboards shipped with collapse-watch.", no_args_is_help=True)


@dashboards_app.command("push")
def dashboards_push(
    grafana_url: Annotated[str, typer.Option(help="Grafana base URL, e.g. http://localhost:3000.")],
    folder: Annotated[str, typer.Option(help="Folder to create or reuse.")] = "collapse-watch",
    token_env: Annotated[
        str, typer.Option(help="Environment variable holding a service-account token.")
    ] = "GRAFANA_TOKEN",
    user_env: Annotated[
        str, typer.Option(help="Variable with a user name (basic auth, if no token).")
    ] = "GRAFANA_USER",
    password_env: Annotated[
        str, typer.Option(help="Variable with the password (basic auth).")
    ] = "GRAFANA_PASSWORD",
) -> None:
    """Upload (create or overwrite) the dashboards through Grafana's HTTP API, for teams without provisioning."""
    from collector.grafana.push import grafana_base_url, push_dashboards

    try:
        grafana_url = grafana_base_url(grafana_url)
    except ValueError as exc:
        raise fail(str(exc)) from None
    # a secret file's trailing newline is not part of the token (and would be echoed by a header error)
    token = (os.environ.get(token_env) or "").strip()
    user, password = os.environ.get(user_env), os.environ.get(password_env)
    if not token and not (user and password):
        raise fail(f"set {token_env} (a service-account token) or {user_env} and {password_env}")
    try:
        results = push_dashboards(
            grafana_url,
            token=token or None,
            basic_auth=None if token else (user, password),  # type: ignore[arg-type]
            folder=folder,
        )
    except Exception as exc:
        from collector.redaction import redact

        detail = redact(f"{type(exc).__name__}: {exc}", [v for v in (token, password) if v])
        first = detail.splitlines()[0] if detail.strip() else type(exc).__name__
        raise fail(f"pushing dashboards to {grafana_url} failed: {first[:300]}", code=1) from None
    for r in results:
        out.print(
            f"{r.get('uid')}: {r.get('status', 'ok')} {r.get('url', '')}", highlight=False, markup=False
        )
