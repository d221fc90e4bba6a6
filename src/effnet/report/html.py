"""HTML building blocks for the one-file report: escaping, inlined images, tables, the page.

The page is self-contained: images are ``data:`` URIs, the style sheet and the few lines of
script (sortable tables) are inline, nothing is fetched, so it opens from the file system,
offline, and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Cell", "data_uri", "esc", "image", "page", "section", "table"]


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def data_uri(payload: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def image(payload: bytes, alt: str, mime: str = "image/png", cls: str = "") -> str:
    klass = f' class="{esc(cls)}"' if cls else ""
    return f'<img{klass} src="{data_uri(payload, mime)}" alt="{esc(alt)}">'


@dataclass(frozen=True)
class Cell:
    """A table cell: ``text`` shown, ``value`` sorted on (numbers sort as numbers)."""

    text: str
    value: float | str | None = None
    cls: str = ""
    raw: bool = False
    """``text`` is HTML already (not escaped)."""


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Cell | str | float | int]],
    *,
    sortable: bool = False,
    cls: str = "",
    table_id: str = "",
) -> str:
    """A table; ``sortable`` ones sort by a column when its header is clicked."""
    classes = " ".join(c for c in ("sortable" if sortable else "", cls) if c)
    attrs = (f' id="{esc(table_id)}"' if table_id else "") + (
        f' class="{classes}"' if classes else ""
    )
    head = "".join(
        f'<th scope="col"{" tabindex=0" if sortable else ""}>{esc(h)}</th>' for h in headers
    )
    body = []
    for row in rows:
        cells = []
        for cell in row:
            c = cell if isinstance(cell, Cell) else Cell(str(cell), cell)
            value = "" if c.value is None else f' data-v="{esc(c.value)}"'
            klass = f' class="{esc(c.cls)}"' if c.cls else ""
            cells.append(f"<td{value}{klass}>{c.text if c.raw else esc(c.text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{body}</section>'


_CSS = """
:root { --fg: #1d2329; --muted: #5c6670; --line: #dde2e7; --bg: #ffffff; --panel: #f5f7f9;
  --accent: #2f6fb0; --bad: #b3261e; --warn-bg: #fff4e5; --warn-line: #e8a33d; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header, main, footer { max-width: 1180px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 14px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 16px 0 6px; }
nav { font-size: 13px; margin: 6px 0 4px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
.summary { font-size: 15px; background: var(--panel); border: 1px solid var(--line);
  border-radius: 6px; padding: 10px 14px; margin: 8px 0; }
.summary .big { font-size: 19px; font-weight: 650; }
.summary .facts { color: var(--muted); margin-top: 4px; }
.warning { background: var(--warn-bg); border: 1px solid var(--warn-line); border-left-width: 6px;
  border-radius: 6px; padding: 8px 12px; margin: 8px 0; font-weight: 500; }
.note { color: var(--muted); font-size: 13px; }
img.plot { max-width: 100%; height: auto; display: block; margin: 6px 0; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: var(--panel); font-weight: 600; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 10px; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 10px; }
td.low { color: var(--bad); font-weight: 600; }
table.kv th, table.kv td { text-align: left; }
table.kv td { font-family: ui-monospace, Menlo, Consolas, monospace; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(262px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 6px; background: var(--panel); }
.card .pair { display: flex; gap: 4px; }
.card img { width: 124px; height: 124px; object-fit: contain; background: #000;
  image-rendering: auto; border-radius: 3px; }
.card .missing { width: 252px; height: 124px; display: flex; align-items: center;
  justify-content: center; color: var(--muted); background: #eceff2; border-radius: 3px; }
.card .cap { font-size: 12px; margin-top: 4px; overflow-wrap: anywhere; }
.card .cap b.wrong { color: var(--bad); }
.card .path { color: var(--muted); font-size: 11px; }
.cols { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
details summary { cursor: pointer; color: var(--accent); }
footer { color: var(--muted); font-size: 12px; padding: 24px 20px 30px; }
"""

_JS = """
(function () {
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v === null) { v = td.textContent; }
    var n = parseFloat(v);
    return (v !== '' && !isNaN(n) && isFinite(v)) ? n : v.toLowerCase();
  }
  function sortBy(table, col, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute('aria-sort');
    });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener('click', function () { sortBy(table, col, th); });
      th.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(table, col, th); }
      });
    });
  });
})();
"""


def page(title: str, header: str, nav: Sequence[tuple[str, str]], body: str, footer: str) -> str:
    """The whole document: ``nav`` is (section id, label) pairs."""
    links = "".join(f'<a href="#{esc(i)}">{esc(label)}</a>' for i, label in nav)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<header>{header}<nav>{links}</nav></header>"
        f"<main>{body}</main><footer>{footer}</footer>"
        f"<script>{_JS}</script></body></html>\n"
    )
