"""report.html: the report as one self-contained page (figures as data URIs, inline CSS, no scripts, no network).

The Markdown comes from advnorm's own report code, so a small subset is enough: ATX headings, paragraphs,
``-``/``*`` bullet lists, ``**bold**``, ``*italic*``, ```code```, fenced code blocks, GitHub pipe tables and images
``![name](file.png)`` read from the report's folder. Everything else is shown as (escaped) text.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from advnorm.io_atomic import atomic_write_text

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""Content-Security-Policy of the page: no request of any kind leaves it (images are data URIs, the CSS is inline)."""

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; background: #fff; max-width: 1100px; margin: 2em auto; padding: 0 1.2em; }
h1, h2, h3, h4 { line-height: 1.25; margin: 1.4em 0 0.6em; }
h1 { font-size: 1.8em; border-bottom: 1px solid #d0d7de; padding-bottom: 0.3em; }
h2 { font-size: 1.4em; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; }
h3 { font-size: 1.15em; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em;
            background: #f6f8fa; border-radius: 4px; }
code { padding: 0.1em 0.3em; }
pre { padding: 0.8em; overflow-x: auto; }
pre code { padding: 0; background: none; }
.table-wrap { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.65em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1.2em 0; }
img { max-width: 100%; height: auto; }
figcaption { color: #59636e; font-size: 0.9em; }
.missing { color: #9a3412; background: #fff7ed; border: 1px dashed #f97316; padding: 0.3em 0.6em; }
"""

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_IMAGE_LINE = re.compile(r"^!\[([^\]]*)\]\(([^()\s]+)\)$")
_INLINE = re.compile(
    r"(?P<code>`+)(?P<code_text>.+?)(?P=code)"
    r"|!\[(?P<alt>[^\]]*)\]\((?P<src>[^()\s]+)\)"
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|(?<![\w*])\*(?P<em>[^\s*](?:[^*]*[^\s*])?)\*(?![\w*])"
)
_SEPARATOR_CELL = re.compile(r"^:?-{1,}:?$")
_NUMBER = re.compile(r"^[-+−]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?%?(\s*±\s*\d+(\.\d*)?%?)?$|^(nan|inf|-inf|[-–—])$")


def write_html_report(markdown_path: Path) -> Path:
    """Write ``report.html`` beside ``markdown_path`` (a report.md written by advnorm), atomically; its path."""
    markdown_path = Path(markdown_path)
    text = markdown_path.read_text(encoding="utf-8")
    out = markdown_path.with_suffix(".html")
    atomic_write_text(out, markdown_to_html(text, markdown_path.parent))
    return out


def markdown_to_html(markdown: str, folder: Path) -> str:
    """The whole page for ``markdown``; images are read from ``folder``."""
    body = _blocks(markdown.splitlines(), Path(folder))
    headings = (m.group(2) for line in markdown.splitlines() if (m := _HEADING.match(line.strip())))
    title = _plain(next(headings, "advnorm report"))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _blocks(lines: list[str], folder: Path) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
        elif stripped.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```")), len(lines))
            code = html.escape("\n".join(lines[i + 1 : end]))
            out.append(f"<pre><code>{code}</code></pre>")
            i = end + 1
        elif m := _HEADING.match(stripped):
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2), folder)}</h{level}>")
            i += 1
        elif _is_table_start(lines, i):
            end = i + 2
            while end < len(lines) and lines[end].strip().startswith("|"):
                end += 1
            out.append(_table(lines[i:end], folder))
            i = end
        elif _BULLET.match(line):
            i = _bullets(lines, i, folder, out)
        elif m := _IMAGE_LINE.match(stripped):
            out.append(_figure(m.group(1), m.group(2), folder))
            i += 1
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not _starts_block(lines, i):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para), folder)}</p>")
    return out


def _bullets(lines: list[str], i: int, folder: Path, out: list[str]) -> int:
    """Append the list starting at line ``i`` to ``out``; the index after it. Indented lines continue an item."""
    items: list[str] = []
    while i < len(lines) and lines[i].strip():
        if m := _BULLET.match(lines[i]):
            items.append(m.group(1).strip())
        else:
            items[-1] += " " + lines[i].strip()
        i += 1
    out.append("<ul>\n" + "\n".join(f"<li>{_inline(it, folder)}</li>" for it in items) + "\n</ul>")
    return i


def _starts_block(lines: list[str], i: int) -> bool:
    s = lines[i].strip()
    return bool(
        s.startswith("```") or _HEADING.match(s) or _BULLET.match(lines[i]) or _IMAGE_LINE.match(s)
    ) or _is_table_start(lines, i)


def _is_table_start(lines: list[str], i: int) -> bool:
    if i + 1 >= len(lines) or not lines[i].strip().startswith("|"):
        return False
    sep = _cells(lines[i + 1])
    return bool(sep) and all(_SEPARATOR_CELL.match(c) for c in sep)


def _cells(line: str) -> list[str]:
    """The cells of a pipe-table row; ``\\|`` is a literal ``|`` inside a cell."""
    s = line.strip()
    s = s[1:] if s.startswith("|") else s
    s = s[:-1] if s.endswith("|") and not s.endswith("\\|") else s
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", s)]


def _table(lines: list[str], folder: Path) -> str:
    header, spec, rows = _cells(lines[0]), _cells(lines[1]), [_cells(r) for r in lines[2:]]
    n = len(header)
    rows = [(r + [""] * n)[:n] for r in rows]
    align = []
    for k in range(n):
        s = spec[k] if k < len(spec) else ""
        values = [r[k] for r in rows if r[k]]
        right = s.endswith(":") and not s.startswith(":")
        align.append(' class="num"' if right or (values and all(_NUMBER.match(v) for v in values)) else "")
    head = "".join(f"<th{a}>{_inline(c, folder)}</th>" for c, a in zip(header, align, strict=True))
    body = "\n".join(
        "<tr>" + "".join(f"<td{a}>{_inline(c, folder)}</td>" for c, a in zip(r, align, strict=True)) + "</tr>"
        for r in rows
    )
    return f'<div class="table-wrap"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>'


def _inline(text: str, folder: Path) -> str:
    """Escaped ``text`` with code spans, images, bold and italics rendered."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        if m.group("code"):
            out.append(f"<code>{html.escape(m.group('code_text').strip())}</code>")
        elif m.group("src") is not None:
            out.append(_image(m.group("alt"), m.group("src"), folder))
        elif m.group("bold") is not None:
            out.append(f"<strong>{_inline(m.group('bold'), folder)}</strong>")
        else:
            out.append(f"<em>{_inline(m.group('em'), folder)}</em>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _plain(text: str) -> str:
    """Heading text without Markdown markup (for the page title)."""
    return re.sub(r"[`*]", "", text).strip()


def _data_uri(src: str, folder: Path) -> str | None:
    """``src`` (a file name relative to ``folder``) as a base64 data URI; None if it is not a readable image there."""
    mime = IMAGE_TYPES.get(Path(src).suffix.lower())
    if mime is None or "://" in src or src.startswith(("/", "data:")):
        return None
    path = (folder / src).resolve()
    try:
        data = path.read_bytes() if path.is_file() and path.is_relative_to(folder.resolve()) else None
    except OSError:
        data = None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}" if data else None


def _image(alt: str, src: str, folder: Path) -> str:
    uri = _data_uri(src, folder)
    if uri is None:
        return f'<span class="missing">[missing figure: {html.escape(src)}]</span>'
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _figure(alt: str, src: str, folder: Path) -> str:
    uri = _data_uri(src, folder)
    if uri is None:
        note = f"Figure <code>{html.escape(src)}</code> is missing: no such image beside the report."
        return f'<p class="missing">{note}</p>'
    caption = html.escape(alt or src)
    return f'<figure><img src="{uri}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'
