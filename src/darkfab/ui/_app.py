"""The console's FastAPI app: one router of pages, one of actions, static files, and the security headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import DarkfabError, NotFoundError, StoreUnavailable
from ..registry import Registry
from ..store import RETRY_AFTER_S, Store
from ._auth import Sessions
from ._cache import CampaignCache
from ._views import ChainCache

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def plotly_js() -> Path:
    """plotly.min.js from the installed ``plotly`` package (the console's charts work offline)."""
    try:
        path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    except ModuleNotFoundError:
        raise DarkfabError("the console's charts need the plotly package; fix: pip install 'darkfab[ui]'") from None
    if not path.is_file():
        raise DarkfabError(f"plotly.min.js is missing from the plotly package ({path}); fix: reinstall plotly")
    return path


class Console:
    """What every route shares: the store, the registry, the templates, the sessions and the chain check."""

    def __init__(self, store: Store, sessions: Sessions) -> None:
        self.store = store
        self.registry = Registry(store)
        self.sessions = sessions
        self.chain = ChainCache()
        self.campaigns = CampaignCache()
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined)
        for name in self.env.list_templates():  # compiled at start, not by the first visitor of each page
            self.env.get_template(name)

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session = self.sessions.get(request)
        html = self.env.get_template(name).render(session=session, path=request.url.path, **context)
        return HTMLResponse(html, status_code=status)


def create_app(store: Store, *, token: str) -> FastAPI:
    """The console over ``store``; ``token`` is the admin token that lets a person act."""
    from ._actions import router as actions
    from ._compare import router as compare
    from ._pages import router as pages

    app = FastAPI(title="darkfab console", docs_url=None, redoc_url=None, openapi_url=None)
    console = Console(store, Sessions(token))
    app.state.console = console
    js = plotly_js()

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["content-security-policy"] = CSP
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["referrer-policy"] = "no-referrer"
        response.headers["x-frame-options"] = "DENY"
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers["cache-control"] = "no-store"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return console.page(request, "error.html", status=exc.status_code, message=str(exc.detail))

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        return console.page(request, "error.html", status=404, message=str(exc))

    @app.exception_handler(StoreUnavailable)
    async def store_out(request: Request, exc: StoreUnavailable) -> Response:
        response = console.page(request, "error.html", status=503, message=str(exc))
        response.headers["retry-after"] = str(RETRY_AFTER_S)
        return response

    @app.exception_handler(DarkfabError)
    async def bad(request: Request, exc: DarkfabError) -> Response:
        return console.page(request, "error.html", status=400, message=str(exc))

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        return FileResponse(js, media_type="text/javascript", headers={"cache-control": "max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        allowed = {"console.js": "text/javascript", "console.css": "text/css"}
        if name not in allowed:
            raise StarletteHTTPException(404, f"no static file {name!r}")
        return FileResponse(HERE / "static" / name, media_type=allowed[name])

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    app.include_router(pages)
    app.include_router(compare)  # before actions: its POST /factories/{name}/{verb} would take /compare
    app.include_router(actions)
    return app
