"""The web dashboard: `GET /` the page, `GET /static/{path}` its assets (assistant/web/).

The page and its assets load without a token: they hold no data. The page shows only its login
form until it is given a token that the API accepts, keeps that token in the browser
(localStorage), and sends it as `Authorization: Bearer` with every data call (and as `?token=`
on the events websocket, where browsers cannot set headers). Everything the page loads comes
from this origin: no CDN, no fonts or scripts from elsewhere; the Content-Security-Policy below
makes the browser refuse anything else, so an asset that slipped in from outside fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

router = APIRouter(tags=["dashboard"], include_in_schema=False)

WEB = Path(__file__).resolve().parents[2] / "web"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",  # ES modules need a JavaScript type
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
# Same origin only. 'self' covers ws:// to this host (CSP level 3); blob: is the reply audio,
# fetched with the token and played from memory.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",  # revalidate: an upgraded gateway serves the new page at once
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _asset(path: str) -> FileResponse:
    file = (WEB / path).resolve()
    if not file.is_relative_to(WEB) or not file.is_file() or file.suffix not in TYPES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no dashboard asset {path!r}")
    return FileResponse(file, media_type=TYPES[file.suffix], headers=HEADERS)


@router.get("/")
def page() -> FileResponse:
    """The dashboard (its login form until a valid token is given)."""
    return _asset("index.html")


@router.get("/static/{path:path}")
def asset(path: str) -> FileResponse:
    """A file of the dashboard: its scripts (ES modules), style sheet and icon."""
    return _asset(path)
