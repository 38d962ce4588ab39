"""Fixtures for the docs-site tests: strict builds, a local server, and chromium.

One session builds the site twice, in parallel, into a folder served on 127.0.0.1: ``repo``
from the real ``course/release``, and ``fixture`` from ``fixtures/release``, whose only
notebook is a small week-3 one with known math (so every other week's notebook page is the
placeholder of an unreleased notebook). Each build's ``site_url`` is its served URL, or
Material's instant navigation falls back to full reloads.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE_RELEASE = Path(__file__).parent / "fixtures" / "release"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Offline: every host name but 127.0.0.1 fails to resolve, and no proxy may resolve it.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--no-proxy-server",
]
LOCAL_HOSTS = {"127.0.0.1"}


@dataclass
class BuiltSite:
    name: str
    path: Path
    url: str
    output: str

    def pages(self) -> list[str]:
        """URLs of every HTML page of the build."""
        return sorted(
            self.url + str(p.relative_to(self.path).as_posix()).removesuffix("index.html")
            for p in self.path.rglob("*.html")
        )


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="session")
def server_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="session")
def server(server_root) -> str:
    handler = functools.partial(QuietHandler, directory=str(server_root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def sites(server_root, server, tmp_path_factory) -> dict[str, BuiltSite]:
    releases = {"repo": None, "fixture": FIXTURE_RELEASE}
    running = {}
    for name, release in releases.items():
        env = {
            **os.environ,
            "SITE_URL": f"{server}{name}/",
            # Parallel builds must not share mkdocs-jupyter's cache: each evicts the others'.
            "NOTEBOOK_CACHE_DIR": str(tmp_path_factory.mktemp(f"notebook-cache-{name}")),
            "NO_MKDOCS_2_WARNING": "1",
        }
        env.pop("COURSE_RELEASE_DIR", None)
        if release is not None:
            env["COURSE_RELEASE_DIR"] = str(release)
        command = [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(REPO / "mkdocs.yml"),
            "--site-dir",
            str(server_root / name),
        ]
        running[name] = subprocess.Popen(
            command, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    built = {}
    for name, process in running.items():
        output, _ = process.communicate(timeout=300)
        if process.returncode != 0:
            pytest.fail(f"`mkdocs build --strict` of the {name} site failed:\n{output}")
        built[name] = BuiltSite(name, server_root / name, f"{server}{name}/", output)
    return built


@pytest.fixture(scope="session")
def repo_site(sites) -> BuiltSite:
    return sites["repo"]


@pytest.fixture(scope="session")
def fixture_site(sites) -> BuiltSite:
    return sites["fixture"]


@pytest.fixture(scope="session")
def chromium(playwright):
    """Debian's chromium, driven by pytest-playwright's Playwright instance."""
    if not Path(CHROMIUM).exists():
        reason = f"no chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must run the browser tests")
        pytest.skip(reason)
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class Browsing:
    """A page in a fresh browser context that refuses every request leaving 127.0.0.1."""

    page: object
    external: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def goto(self, url: str) -> None:
        self.page.goto(url, wait_until="networkidle")

    def new_page(self):
        """Another tab in the same context, watched for console errors like the first."""
        page = self.page.context.new_page()
        self.watch(page)
        return page

    def watch(self, page) -> None:
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(
            f"{page.url}: {msg.text}"))
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))

    def assert_clean(self) -> None:
        assert not self.external, f"requests that left 127.0.0.1: {self.external}"
        assert not self.errors, f"console errors: {self.errors}"


def leaves_this_machine(url: str) -> bool:
    host = urlsplit(url).hostname  # None for data:, blob: and about: URLs
    return host is not None and host not in LOCAL_HOSTS


def watched_page(chromium, **context_options) -> Browsing:
    """A page in a fresh context that records requests leaving 127.0.0.1 and console errors.

    The browser's own flags (CHROMIUM_ARGS) make those requests fail. Listening, rather than
    routing every request through Python, keeps chromium's cache on, which Playwright turns
    off for a context with routes.
    """
    context = chromium.new_context(**context_options)
    state = Browsing(page=None)
    context.on("request", lambda request: leaves_this_machine(request.url)
               and state.external.append(request.url))
    state.page = context.new_page()
    state.watch(state.page)
    return state


@pytest.fixture
def browsing(chromium):
    state = watched_page(chromium)
    yield state
    state.page.context.close()
    state.assert_clean()
