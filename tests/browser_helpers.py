"""Opening a page in real headless Chromium (Debian's, /usr/bin/chromium) behind a logging proxy, and the
dumped DOM as a tree: shared by the tests of the self-contained pages (eval.html, the monitor report).

The page must render without network access: every request Chromium makes goes to a local proxy that
records it and answers 502, so the page-makes-no-request check is an observation, not a grep. Chromium
itself phones home at start-up (network time, search preconnects, the AI-mode eligibility check, and
the sign-in ``ListAccounts`` call that no switch turns off, chromiumembedded/cef#4276); the flags below
were found by watching this proxy: the features are disabled, and the sign-in origin (``--gaia-url``) is
sent to port 9, which Chromium refuses itself (ERR_UNSAFE_PORT), so that call never leaves the browser.
Chromium 156 (Debian, 2026-12) also asks the component updater's server (update.googleapis.com) despite
``--disable-component-update``: its URL source is sent to port 9 the same way.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
TIMES: dict[str, float] = {}


def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("FTP_SKIP_BROWSER") == "1":
        pytest.skip("FTP_SKIP_BROWSER=1 and /usr/bin/chromium is missing")
    pytest.fail("/usr/bin/chromium is missing: install Debian's chromium (`apt-get install chromium`, as .ci/run "
                "does), or set FTP_SKIP_BROWSER=1 to skip the browser tests")


class _Recorder(BaseHTTPRequestHandler):
    """Records each request line (GET http://..., CONNECT host:443) and refuses it with 502."""

    server: "Proxy"

    def parse_request(self) -> bool:
        self.server.seen.append(self.raw_requestline.decode("latin-1").strip())
        return super().parse_request()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method, CONNECT included
            return self._refuse
        raise AttributeError(name)

    def _refuse(self) -> None:
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.seen: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def browse(page: Path, profile: Path, label: str, *mode: str) -> tuple[str, list[str]]:
    """Run Chromium once on ``page`` (``mode``: --dump-dom or --screenshot=...) behind a fresh proxy;
    returns its stdout and every request the proxy saw."""
    proxy = Proxy()
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", f"--proxy-server=http://127.0.0.1:{proxy.port}",
             "--proxy-bypass-list=<-loopback>", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
             "--disable-features=NetworkTimeServiceQuerying,PreconnectToSearch,AimEnabled",
             "--gaia-url=https://127.0.0.1:9/", "--component-updater=url-source=https://127.0.0.1:9/",
             f"--user-data-dir={profile}"]
    start = time.monotonic()
    try:
        done = subprocess.run([str(chromium()), *flags, *mode, page.as_uri()], capture_output=True, text=True,
                              timeout=60)
    finally:
        TIMES[label] = time.monotonic() - start
        proxy.shutdown()
        proxy.server_close()
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, proxy.seen


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: "Node | None") -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find(self, tag: str, **attrs: str) -> list["Node"]:
        """Descendants with this tag whose attributes contain the given values (class: one of its words)."""
        out = []
        for c in self.children:
            if isinstance(c, Node):
                if c.tag == tag and all(v in (c.attrs.get(k.rstrip("_")) or "").split() or
                                        c.attrs.get(k.rstrip("_")) == v for k, v in attrs.items()):
                    out.append(c)
                out.extend(c.find(tag, **attrs))
        return out


class Tree(HTMLParser):
    """The dumped DOM as a tree of Nodes (the DOM Chromium serialises is well formed)."""

    VOID = {"meta", "br", "img", "link", "input", "hr", "col", "area", "base", "source", "wbr"}

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.at = Node("#root", {}, None)
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.at)
        self.at.children.append(node)
        if tag not in self.VOID:
            self.at = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.at.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.at))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.at
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.at = node.parent

    def handle_data(self, data: str) -> None:
        self.at.children.append(data)
