"""The dashboard as the tests drive it: a browser page on a real gateway that records every
request it makes, logs in, switches views and saves screenshots."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Locator, Page, expect

from assistant.launcher import RunningGateway

VIEWS = ("devices", "plan", "requests", "home", "console")


def origin(url: str) -> str:
    """scheme://host:port of a URL; a blob: URL has the origin of the page that made it."""
    if url.startswith("blob:"):
        url = url[len("blob:") :]
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


class Dashboard:
    def __init__(
        self, page: Page, gateway: RunningGateway, artifacts: Path, seen: list[tuple[str, str]]
    ) -> None:
        self.page, self.gateway, self.artifacts = page, gateway, artifacts
        self.requests: list[tuple[str, str]] = []  # (method, url) of everything this page asked
        self.errors: list[str] = []  # uncaught exceptions and Content-Security-Policy refusals

        def on_request(method: str, url: str) -> None:
            self.requests.append((method, url))
            seen.append((method, url))

        page.on("request", lambda r: on_request(r.method, r.url))
        page.on("websocket", lambda ws: on_request("WEBSOCKET", ws.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on(
            "console",
            lambda m: self.errors.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.goto(gateway.url + "/")

    def login(self, token: str | None = None) -> None:
        self.page.fill("#token-input", token or self.gateway.token or "")
        self.page.click("#login-button")
        expect(self.page.locator("#app")).to_be_visible()
        expect(self.page.locator("#live")).to_have_text("live")  # the events channel is open

    def view(self, name: str) -> Locator:
        self.page.click(f'#nav a[data-view="{name}"]')
        section = self.page.locator(f"#view-{name}")
        expect(section).to_be_visible()
        return section

    def shot(self, name: str) -> Path:
        width = self.page.viewport_size["width"] if self.page.viewport_size else 0
        path = self.artifacts / f"{name}-{width}px.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def api_paths(self) -> list[str]:
        return [url for _, url in self.requests if urlsplit(url).path.startswith("/v1/")]
