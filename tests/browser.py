"""A small driver of headless Chromium over the DevTools protocol on a pipe, for the report's browser test.

Chromium started with ``--remote-debugging-pipe`` reads NUL-terminated JSON
commands on file descriptor 3 and writes replies and events on descriptor 4.
:class:`Browser` starts one browser, attaches to its page and opens pages one
after the other; :meth:`Browser.open` collects what went wrong while a page
loaded (uncaught exceptions, ``console.error``, error log entries, failed
resource loads), the page's links, the tooltips inside its embedded SVG
documents, and screenshots of the page and of each figure. Every wait has a
deadline, so a hung browser fails a test instead of hanging it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import numpy as np

__all__ = ["Browser", "BrowserError", "PageResult", "find_chromium", "png_stats"]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
]
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# In the page: every link's resolved URL and every figure's box (document coordinates).
_INSPECT = """JSON.stringify({
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  figures: [...document.querySelectorAll('img, object')].map(e => {
    const r = e.getBoundingClientRect();
    return {tag: e.tagName.toLowerCase(), src: e.currentSrc || e.data || '',
            x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height,
            loaded: e.tagName === 'IMG' ? (e.complete && e.naturalWidth > 0) : true};
  }),
  height: document.documentElement.scrollHeight})"""

# Hide sticky and fixed bars (they would cover the figure), scroll figure number %d into view, wait two
# frames, give its box in document coordinates.
_SCROLL_TO = """(async () => {
  for (const el of document.body.querySelectorAll('*')) {
    if (['sticky', 'fixed'].includes(getComputedStyle(el).position)) el.style.visibility = 'hidden';
  }
  const e = document.querySelectorAll('img, object')[%d];
  e.scrollIntoView({block: 'start'});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const r = e.getBoundingClientRect();
  return JSON.stringify({x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height});
})()"""


class BrowserError(RuntimeError):
    """The browser died, said something unexpected or did not answer in time."""


@dataclass
class PageResult:
    """What one page did while it loaded."""

    url: str
    errors: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    tooltips: dict[str, int] = field(default_factory=dict)
    screenshot: bytes = b""
    figure_shots: list[bytes] = field(default_factory=list)


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable: ``$CHROMIUM``, else the first of the usual names on the PATH."""
    for name in (os.environ.get("CHROMIUM"), *NAMES):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


def png_stats(png: bytes) -> tuple[int, float]:
    """Number of distinct colours and the share of pixels that are not (nearly) white in a PNG."""
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    rgb = np.round(np.asarray(pixels)[..., :3] * 255).astype(np.uint8)
    flat = rgb.reshape(-1, 3)
    colours = len(
        np.unique(flat[:, 0].astype(np.int32) << 16 | flat[:, 1].astype(np.int32) << 8 | flat[:, 2])
    )
    nonwhite = float((flat.min(axis=1) < 235).mean())
    return colours, nonwhite


class Browser:
    """One headless Chromium with one page, driven over ``--remote-debugging-pipe``.

    Parameters
    ----------
    executable : str
        The browser.
    timeout : float
        Seconds any single wait may take.
    window : tuple of int
        The viewport's width and height.
    """

    def __init__(
        self, executable: str, *, timeout: float = 30.0, window: tuple[int, int] = (1300, 1000)
    ) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="report-browser-")
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()

        def on_fds_3_and_4() -> None:  # runs in the child: the protocol's descriptors are 3 and 4
            a, b = fcntl.fcntl(to_chrome, fcntl.F_DUPFD, 10), fcntl.fcntl(from_chrome, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [
            executable,
            *FLAGS,
            f"--user-data-dir={self.profile}",
            f"--window-size={window[0]},{window[1]}",
            "about:blank",
        ]
        self.stderr = Path(self.profile) / "stderr.txt"
        with self.stderr.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=(3, 4),
                preexec_fn=on_fds_3_and_4,
            )
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""
        try:
            self.session = self._attach()
            for domain in ("Runtime", "Log", "Page", "Network", "DOM"):
                self.call(f"{domain}.enable", session=True)
        except BaseException:
            self.close()
            raise

    def _attach(self) -> str:
        """Attach to the browser's page (it may take a moment to appear); return the session's id."""
        deadline = time.monotonic() + self.timeout
        while True:
            pages = [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            if pages:
                attached = self.call(
                    "Target.attachToTarget", {"targetId": pages[0]["targetId"], "flatten": True}
                )
                return str(attached["sessionId"])
            if time.monotonic() > deadline:
                raise BrowserError(f"the browser opened no page within {self.timeout:g} s{self._tail()}")
            time.sleep(0.1)

    # ------------------------------------------------------------ protocol
    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._read], [], [], max(left, 0))
            if not ready:
                raise BrowserError(f"no answer from the browser within {self.timeout:g} s{self._tail()}")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise BrowserError(
                    f"the browser closed the pipe (exit status {self.process.poll()}){self._tail()}"
                )
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = False
    ) -> dict[str, Any]:
        """Send one command and wait for its reply (events that arrive meanwhile are kept in ``events``)."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        try:
            os.write(self._write, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserError(f"the browser is gone (exit status {self.process.poll()})") from None
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _wait_for(self, method: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._receive(deadline))

    # ------------------------------------------------------------ pages
    def open(self, url: str, *, figure_scale: float = 0.25) -> PageResult:
        """Load ``url`` and report its errors, links, figures, tooltips and screenshots."""
        self.events = []
        result = PageResult(url)
        nav = self.call("Page.navigate", {"url": url}, session=True)
        if nav.get("errorText"):
            result.errors.append(f"navigation: {nav['errorText']}")
            return result
        self._wait_for("Page.loadEventFired")
        inspected = json.loads(
            self.call("Runtime.evaluate", {"expression": _INSPECT, "returnByValue": True}, session=True)[
                "result"
            ]["value"]
        )
        result.links, result.figures = inspected["links"], inspected["figures"]
        result.tooltips = self._tooltips(url)
        shot = self.call("Page.captureScreenshot", {"format": "png"}, session=True)
        result.screenshot = base64.b64decode(shot["data"])
        for i, fig in enumerate(result.figures):
            if fig["width"] < 1 or fig["height"] < 1:
                result.figure_shots.append(b"")
                continue
            # offscreen frames (an <object>'s SVG document) are not painted: bring each figure into view first
            box = json.loads(
                self.call(
                    "Runtime.evaluate",
                    {"expression": _SCROLL_TO % i, "awaitPromise": True, "returnByValue": True},
                    session=True,
                )["result"]["value"]
            )
            clip = {k: box[k] for k in ("x", "y", "width", "height")} | {"scale": figure_scale}
            shot = self.call(
                "Page.captureScreenshot",
                {"format": "png", "clip": clip, "captureBeyondViewport": True},
                session=True,
            )
            result.figure_shots.append(base64.b64decode(shot["data"]))
        result.errors += self._errors()
        result.errors += [f"image not loaded: {f['src']}" for f in result.figures if not f["loaded"]]
        return result

    def _errors(self) -> list[str]:
        out = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                text = details.get("exception", {}).get("description") or details.get("text")
                out.append(f"exception: {text} ({details.get('url', '')}:{details.get('lineNumber')})")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                out.append(f"console.{params['type']}: {args}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}".strip())
            elif method == "Network.loadingFailed" and not params.get("canceled"):
                out.append(f"failed load ({params.get('type')}): {params.get('errorText')}")
        return out

    def _tooltips(self, url: str) -> dict[str, int]:
        """Tooltips (``<title>`` elements, ``xlink:title`` attributes) in each embedded document,
        by its URL."""
        root = self.call("DOM.getDocument", {"depth": -1, "pierce": True}, session=True)["root"]
        out: dict[str, int] = {}

        def count(node: dict[str, Any]) -> int:
            attrs = node.get("attributes", [])
            n = int(node.get("nodeName", "").lower() == "title") + sum(
                1 for name in attrs[::2] if name in ("xlink:title", "title")
            )
            for child in node.get("children", []) + (
                [node["contentDocument"]] if "contentDocument" in node else []
            ):
                n += count(child)
            return n

        def walk(node: dict[str, Any]) -> None:
            if node.get("nodeName") == "OBJECT" and "contentDocument" in node:
                attrs = node.get("attributes", [])
                data = dict(zip(attrs[::2], attrs[1::2], strict=False)).get("data", "")
                out[urljoin(url, data)] = count(node["contentDocument"])
            for child in node.get("children", []):
                walk(child)

        walk(root)
        return out

    def close(self) -> None:
        """Ask the browser to quit, then make sure it has (only the process this object started)."""
        with contextlib.suppress(BrowserError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for fd in (self._write, self._read):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_url(path: Path) -> str:
    """The ``file://`` URL of a path."""
    return path.resolve().as_uri()
