"""The page itself: one HTML document drawn from ``facts.document()``, with no asset.

Why it looks like this: a renter opens it on a phone when "the WiFi is slow", often on a
slow link, so it is one response of a few kB (goal < 30 kB: tests/bench/bench_page.py),
readable without JavaScript (there is none) and without a second request: the style is
one inline block (allowed by its hash in the Content-Security-Policy, not by
'unsafe-inline'), the plot is inline SVG, the icon a data: URI. Every text from outside
the code (the operator's brand, a network name) is escaped.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Any

from agent.faces.page.facts import rate_text
from agent.faces.page.words import say

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1b1f23}"
    "main{max-width:28rem;margin:0 auto;padding:1rem}"
    "header{display:flex;justify-content:space-between;align-items:baseline}"
    "h1{font-size:1.2rem;margin:.2rem 0}h2{font-size:1rem;margin:0 0 .4rem}"
    "section{background:#fff;border-radius:.6rem;padding:.8rem 1rem;margin:.7rem 0}"
    ".state{font-size:1.15rem;font-weight:600}"
    ".s-full_speed,.s-connected{border-left:.4rem solid #2e8540}"
    ".s-slow_signal,.s-slow_busy,.s-slow_cap,.s-switching,.s-starting{border-left:.4rem solid #d98e04}"
    ".s-no_service,.s-stopped,.s-unknown{border-left:.4rem solid #c0392b}"
    ".notice{background:#fff6d6}ul{margin:0;padding-left:1.1rem}"
    "small,.muted{color:#5a6570}a{color:#0b5cad}"
    ".bars rect{fill:#c9d1d9}.bars rect.on{fill:#1b1f23}"
    ".plot path.area{fill:#b7d4f0}.plot path.line{fill:none;stroke:#0b5cad;stroke-width:1}"
    ".plot line{stroke:#c9d1d9}.plot text{font-size:9px;fill:#5a6570}"
)
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
"""What the Content-Security-Policy allows: this style block and nothing else."""

FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
           b'<rect x="1" y="10" width="3" height="5" fill="#0b5cad"/><rect x="6" y="7" width="3" height="8" '
           b'fill="#0b5cad"/><rect x="11" y="3" width="3" height="12" fill="#0b5cad"/></svg>')
"""Three signal bars, 300 bytes: served at /favicon.ico and inlined in the page's head."""
FAVICON_URI = "data:image/svg+xml;base64," + base64.b64encode(FAVICON).decode()

CSP = ("default-src 'none'; " f"style-src '{STYLE_HASH}'; img-src data:; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
"""Nothing loads but this page's own style block and data: images; no script at all; no
framing (with X-Frame-Options for older browsers)."""

PLOT_W, PLOT_H = 288, 60
"""One pixel per five-minute bucket (agent/core/daygraph.py), 60 pixels tall."""


def bars_svg(bars: int) -> str:
    on = ' class="on"'
    rects = "".join(f'<rect x="{i * 7}" y="{14 - 3 * (i + 1)}" width="5" height="{3 * (i + 1) + 1}"'
                    f'{on if i < bars else ""}/>' for i in range(4))
    return f'<svg class="bars" width="28" height="16" viewBox="0 0 28 16" aria-hidden="true">{rects}</svg>'


def plot_svg(kbps: list[float], bucket_s: int, lang: str) -> str:
    """Today's throughput as an area over 24 h; the x axis is the whole day, so the plot
    shows where in the day we are."""
    per_day = max(1, 86400 // max(1, bucket_s))
    top = max([*kbps, 1.0])
    points = [(i * PLOT_W / per_day, PLOT_H - v * (PLOT_H - 4) / top) for i, v in enumerate(kbps)]
    grid = "".join(f'<line x1="{x}" y1="0" x2="{x}" y2="{PLOT_H}"/><text x="{x + 2}" y="{PLOT_H + 10}">{h}</text>'
                   for h, x in ((h, h * PLOT_W // 24) for h in (0, 6, 12, 18)))
    shapes = ""
    if points:
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        shapes = (f'<path class="area" d="M0,{PLOT_H} L{line} L{points[-1][0]:.1f},{PLOT_H} Z"/>'
                  f'<path class="line" d="M{line}"/>')
    label = escape(say(lang, "plot.label", rate=rate_text(top if kbps else None)))
    return (f'<svg class="plot" role="img" aria-label="{label}" width="100%" viewBox="0 0 {PLOT_W} {PLOT_H + 12}"'
            f' preserveAspectRatio="none"><title>{label}</title>{grid}{shapes}</svg>')


def page(doc: dict[str, Any]) -> str:
    """The whole HTML document for ``doc`` (facts.document or facts.unavailable)."""
    lang = doc["lang"]
    e = escape
    state = doc["state"]
    head = (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>{e(doc["brand"])}: {e(say(lang, "title"))}</title>'
            f'<link rel="icon" href="{FAVICON_URI}"><style>{STYLE}</style></head><body><main>')
    other = "ja" if lang == "en" else "en"
    header = f'<header><h1>{e(doc["brand"])}</h1><a href="/?lang={other}">{e(say(lang, "lang.other"))}</a></header>'
    parts = [head, header,
             f'<section class="s-{e(state["code"])}"><div class="state" id="state">{e(state["text"])}</div></section>']
    if doc.get("low_allowance"):
        parts.append(f'<section class="notice" id="low-allowance">{e(doc["low_allowance"]["text"])}</section>')
    if doc.get("notice"):
        parts.append(f'<section class="notice" id="notice">{e(doc["notice"]["text"])}</section>')
    if doc.get("data") or doc.get("data_text"):
        items = "".join(f'<li id="rule-{i}">{e(rule["text"])}</li>' for i, rule in enumerate(doc["data"])) \
            or f"<li>{e(doc['data_text'])}</li>"
        sim = doc.get("sim") or {}
        tail = f'<small>{e(say(lang, "sim.ends", tail=sim["ends_with"]))}</small>' if sim.get("ends_with") else ""
        parts.append(f'<section id="data"><h2>{e(say(lang, "section.data"))}</h2><ul>{items}</ul>{tail}</section>')
    if doc.get("signal"):
        sig = doc["signal"]
        parts.append(f'<section id="signal"><h2>{e(say(lang, "section.signal"))}</h2>{bars_svg(sig["bars"])} '
                     f'{e(sig["text"])}</section>')
    if doc.get("throughput") is not None:
        thr = doc["throughput"]
        now = e(say(lang, "plot.now", rate=rate_text(thr.get("now_kbps"))))
        parts.append(f'<section id="today"><h2>{e(say(lang, "section.today"))}</h2>'
                     f'{plot_svg(thr.get("today_kbps") or [], int(thr.get("bucket_s") or 300), lang)}'
                     f'<small>{now}</small></section>')
    if doc.get("last_swap"):
        parts.append(f'<section id="last-swap"><small>{e(doc["last_swap"]["text"])}</small></section>')
    footer = [e(say(lang, "updated", at=doc["at"][11:16], zone=doc["zone"]))] if doc.get("at") else []
    if doc.get("support_phone"):
        phone = doc["support_phone"]
        tel = "".join(ch for ch in phone if ch.isdigit() or ch == "+")
        footer.append(f'<a href="tel:{e(tel)}">{e(say(lang, "support", phone=phone))}</a>')
    parts.append(f'<p class="muted"><small>{"<br>".join(footer)}</small></p></main></body></html>')
    return "".join(parts)
