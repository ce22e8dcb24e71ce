"""``trackhouse docs``' web app: the dbt docs site the pipeline publishes, behind the dashboards'
login.

The site shows every model's SQL, columns and lineage, so it asks for what the dashboards ask
for: a live dashboard login. The dashboards' login cookie (app/auth.py) is set for the host
without a port, so the browser sends it here too; only its hash is looked up, as the
dashboards do. A page elsewhere cannot borrow it (SameSite=Strict), and a rebound DNS name
does not carry it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from trackhouse import dbt_docs
from trackhouse.settings import Settings, get_settings

NOT_LOGGED_IN = ("<!doctype html><title>Trackhouse: dbt docs</title><p>Log in to the "
                 "<a href=\"{app}\">Trackhouse dashboards</a> first, then open this page again.")
NOT_GENERATED = ("<!doctype html><title>Trackhouse: dbt docs</title><p>The dbt docs site has "
                 "not been generated yet: Dagster publishes it after its first build of the "
                 "models (the <code>incremental_marts</code> job).")


class LoginRequired:
    """ASGI wrapper answering 401 unless the request carries a live dashboard login."""

    def __init__(self, inner: StaticFiles, settings: Settings) -> None:
        self.inner = inner
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        from app.auth import COOKIE_NAME, user_for_token

        token = Request(scope).cookies.get(COOKIE_NAME, "")
        user = await run_in_threadpool(user_for_token, token) if token else None
        response: Response | None = None
        if user is None:
            app_url = f"http://{self.settings.app_host}:{self.settings.app_port}/"
            response = HTMLResponse(NOT_LOGGED_IN.format(app=app_url), status_code=401)
        elif not (dbt_docs.docs_dir(self.settings) / "index.html").exists():
            response = HTMLResponse(NOT_GENERATED, status_code=503)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.inner(scope, receive, send)


def docs_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    static = StaticFiles(directory=dbt_docs.docs_dir(settings), html=True, check_dir=False)
    app = Starlette()
    app.mount("/", LoginRequired(static, settings))
    return app
