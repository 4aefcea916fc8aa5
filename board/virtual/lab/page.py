"""``pocket-lab page [--lang ja] [--json|--html] [--from lan|internet]``: the renter's page
as the LAN host gets it.

The request is made from inside the lab's LAN namespace (``--from internet``: the
internet's, where it must fail), by a child Python run with ``ip netns exec``, so what it
prints is what a phone on the router's WiFi would get: the page's text (tags dropped, one
line per block), its JSON (``--json``, the versioned document of docs/status-page.md) or
the HTML itself (``--html``). Exit 1 when the page cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from html.parser import HTMLParser

from board.virtual.lab import ctl as labctl

JSON_PATH = "/api/v1/status"
"""agent/faces/page/server.py JSON_PATH (the board does not import the agent's faces)."""
FETCH_TIMEOUT_S = 5.0

CHILD = """
import http.client, sys
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=float(sys.argv[5]))
conn.request("GET", sys.argv[3], headers={"Accept-Language": sys.argv[4]})
answer = conn.getresponse()
sys.stdout.buffer.write(answer.read())
sys.exit(0 if answer.status in (200, 503) else 1)
"""


def fetch(path: str, lang: str = "en", where: str = "lan", timeout: float = FETCH_TIMEOUT_S) -> bytes:
    """The body of ``path`` fetched from the lab's ``where`` namespace; LabError if unreachable."""
    host, port = labctl.page_address()
    ns = {"lan": labctl.LAYOUT.lan, "internet": labctl.LAYOUT.inet}[where]
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CHILD, host, str(port), path, lang,
                           str(timeout)], capture_output=True, timeout=timeout + 10, check=False)
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no answer"]
        raise labctl.LabError(f"page not reachable from the {where} namespace at {labctl.page_url()}: {why[0]}")
    return proc.stdout


class _Text(HTMLParser):
    """The page's visible text, one line per block element."""

    BLOCKS = ("h1", "h2", "section", "li", "p", "br", "header", "small", "div")

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = [""]
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "title", "svg"):
            self._skip += 1
        if tag in self.BLOCKS:
            self.lines.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title", "svg"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.lines[-1] += data


def text_of(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return [line.strip() for line in parser.lines if line.strip()]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", choices=["en", "ja"], default="en", help="the browser's language (Accept-Language)")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="the JSON document (docs/status-page.md)")
    form.add_argument("--html", action="store_true", help="the HTML as served")
    parser.add_argument("--from", dest="where", choices=["lan", "internet"], default="lan",
                        help="the namespace asking (internet: the carrier side, where the page must not answer)")


def main(args: argparse.Namespace) -> int:
    try:
        body = fetch(JSON_PATH if args.json else "/", args.lang, args.where)
    except (labctl.LabError, subprocess.TimeoutExpired) as exc:
        print(f"pocket-lab page: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(json.loads(body), ensure_ascii=False, indent=2))
    elif args.html:
        sys.stdout.write(body.decode())
    else:
        print(f"{labctl.page_url()} (from the LAN host)")
        print("\n".join(text_of(body.decode())))
    return 0
