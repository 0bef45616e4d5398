"""report.html (``evaluation/report_html.py``): the Markdown subset, escaping, embedded figures, and the page as
headless Chromium renders it (skipped where no Chromium is installed; ``scripts/test`` installs it when it can)."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from advnorm.evaluation.report_html import markdown_to_html, write_html_report
from advnorm.evaluation.tables import markdown_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Tables(HTMLParser):
    """The text of every table cell, as ``tables[t][row][col]``, and every <img>'s attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[dict[str, str | None]] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _png(path: Path, width: float = 3.0, height: float = 2.0) -> Path:
    from advnorm.plotting import plt, save_figure

    fig, ax = plt.subplots(figsize=(width, height))
    ax.plot([0, 1, 2], [1, 0, 2])
    return save_figure(fig, path, dpi=50)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])


def test_headings_paragraphs_lists_bold_code(tmp_path: Path) -> None:
    md = (
        "# The *report*\n\nFirst line\nsame paragraph with **bold `code` inside** and `a_b*c*`.\n\n"
        "## Second\n\n- one **x**\n- two `y`\n  continued\n\n### Third\nplain after a heading\n"
    )
    page = markdown_to_html(md, tmp_path)
    assert "<title>The report</title>" in page
    assert "<h1>The <em>report</em></h1>" in page and "<h2>Second</h2>" in page and "<h3>Third</h3>" in page
    assert (
        "<p>First line same paragraph with <strong>bold <code>code</code> inside</strong> and <code>a_b*c*</code>.</p>"
    ) in page
    assert "<ul>\n<li>one <strong>x</strong></li>\n<li>two <code>y</code> continued</li>\n</ul>" in page
    assert "<p>plain after a heading</p>" in page


def test_tables_have_the_right_cells_and_numbers_right_aligned(tmp_path: Path) -> None:
    rows = [
        {"method": "a | b", "CSF": 0.8123, "GM": "0.812 ± 0.021", "note": None},
        {"method": "c", "CSF": float("nan"), "GM": "0.5", "note": "x"},
    ]
    md = "Before\n\n" + markdown_table(rows, ["method", "CSF", "GM", "note"]) + "\nAfter\n"
    page = markdown_to_html(md, tmp_path)
    tables = _Tables(page).tables
    assert tables == [
        [["method", "CSF", "GM", "note"], ["a | b", "0.812", "0.812 ± 0.021", ""], ["c", "nan", "0.5", "x"]]
    ]
    assert '<th>method</th><th class="num">CSF</th><th class="num">GM</th><th>note</th>' in page
    assert '<td>a | b</td><td class="num">0.812</td>' in page
    assert "<p>Before</p>" in page and "<p>After</p>" in page


def test_images_are_embedded_as_data_uris_and_a_missing_one_is_a_visible_note(tmp_path: Path) -> None:
    fig = _png(tmp_path / "fig3.png")
    (tmp_path.parent / "outside.png").write_bytes(fig.read_bytes())
    md = (
        "# R\n\n![fig3.png](fig3.png)\n\n![gone.png](gone.png)\n\n![up](../outside.png)\n\n"
        "Inline ![i](fig3.png) here.\n"
    )
    page = markdown_to_html(md, tmp_path)
    images = _Tables(page).images
    assert len(images) == 2  # the figure and the inline image; the missing and the outside one are notes
    for img in images:
        src = img["src"] or ""
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == fig.read_bytes()
    assert "<figcaption>fig3.png</figcaption>" in page
    assert 'class="missing">Figure <code>gone.png</code> is missing' in page
    assert 'class="missing">Figure <code>../outside.png</code> is missing' in page
    assert 'src="gone.png"' not in page and 'src="../outside.png"' not in page


def test_html_special_characters_are_escaped(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script> & <b>'
    md = (
        f"# {evil}\n\n{evil} `{evil}`\n\n- {evil}\n\n| a<b> | c |\n| --- | --- |\n| {evil} | 1 |\n\n"
        f'![{evil}"]({"fig.png"})\n\n```\n{evil}\n```\n'
    )
    _png(tmp_path / "fig.png")
    page = markdown_to_html(md, tmp_path)
    assert "<script" not in page and "<b>" not in page and 'alert("x")' not in page
    # escaped in the title, h1, paragraph, code span, list item, table cell, alt text, caption and code block
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;") == 9
    assert "<title>&lt;script&gt;" in page and "<th>a&lt;b&gt;</th>" in page
    assert _Tables(page).tables[0][1][0] == evil


def test_write_html_report_writes_beside_the_markdown_atomically(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    md = tmp_path / "report.md"
    md.write_text("# advnorm reproduction report\n\n| x |\n| --- |\n| 1 |\n\n## Figures\n\n![a.png](a.png)\n")
    out = write_html_report(md)
    assert out == tmp_path / "report.html"
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<title>advnorm reproduction report</title>" in page
    assert "<style>" in page and "Content-Security-Policy" in page
    assert not re.search(r"https?://", page) and "<link" not in page and "<script" not in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "report.html", "report.md"]  # no temp file left


# --- the report that write_report writes, in a browser -------------------------------------------------------------


@dataclass
class _Domain:
    """What write_report reads of a dataset."""

    name: str
    layout: str = "nnunet"

    def labelled(self) -> list[str]:
        return ["case1", "case2"]


def _evaluation(dice: dict[str, float]) -> dict:
    per = {d: {"dice": {t: {"mean": v} for t in ("CSF", "GM", "WM")}} for d, v in dice.items()}
    cases = [{"domain": d, "case": f"{d}1", "dice": {t: v for t in ("CSF", "GM", "WM")}} for d, v in dice.items()]
    jsd = {
        "input": {"all": 0.3, "CSF": 0.2, "GM": 0.25, "WM": 0.3},
        "normalized": {"all": 0.1, "CSF": 0.1, "GM": 0.12, "WM": 0.15},
    }
    return {"summary": {"per_domain": per, "jsd": jsd}, "cases": cases}


@pytest.fixture(scope="module")
def written_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """write_report on a small fake comparison (two domains, three models, two seeds) with learning-curve figures."""
    from advnorm.config_file import resolve
    from advnorm.evaluation.report import write_report
    from advnorm.evaluation.results import Cell
    from advnorm.training.log import write_log

    out = tmp_path_factory.mktemp("report")
    summary = {"budget": {"s_updates": 30}, "final": {"d_domain_acc": 0.61, "d_generated_auc": 0.55}}
    cells = [
        Cell("adversarial", "adversarial", s, _evaluation({"A": 0.8 + s / 50, "B": 0.7}), summary=summary)
        for s in (0, 1)
    ]
    cells += [
        Cell(
            "standardized",
            "standardized",
            s,
            _evaluation({"A": 0.75, "B": 0.6 + s / 20}),
            summary={"budget": {"s_updates": 30}},
        )
        for s in (0, 1)
    ]
    cells += [
        Cell(
            "single-A",
            "single",
            s,
            _evaluation({"A": 0.9, "B": 0.3}),
            train_domain="A",
            summary={"budget": {"s_updates": 30}},
        )
        for s in (0, 1)
    ]
    for cell in cells:
        rows = [{"epoch": e, "phase": "train", "loss": 1 / (e + 1), "val_dice": 0.5 + e / 10} for e in range(4)]
        write_log(out / "runs" / cell.name / f"seed{cell.seed}" / "training_log.csv", rows)
    write_report(
        out,
        [_Domain("A"), _Domain("B")],
        cells,
        resolve("quick"),
        lambda c: out / "runs" / c.name / f"seed{c.seed}",
        log=pytest.fail,
    )
    return out


def test_write_report_writes_report_html_with_every_figure(written_report: Path) -> None:
    md = (written_report / "report.md").read_text(encoding="utf-8")
    assert "Every other setting is the profile's." in md
    page = (written_report / "report.html").read_text(encoding="utf-8")
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(figures) == 3  # one learning-curve figure per model
    parsed = _Tables(page)
    assert len(parsed.images) == len(figures) and 'class="missing"' not in page
    # every pipe table became a <table>: Table 1, the paper's Table 1, Table 2, the discriminator
    assert len(parsed.tables) == len(re.findall(r"^\|.*\|\n\|( --- \|)+\n", md, flags=re.MULTILINE)) == 4
    assert not re.search(r"https?://", page)


CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const body = document.body.getBoundingClientRect();
  const num = document.querySelector("td.num");
  const result = {
    images: [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
                                            shown: i.getBoundingClientRect().width, alt: i.alt})),
    tables: [...document.querySelectorAll("table")].map(t => ({rows: t.tBodies[0].rows.length,
                                                              height: t.getBoundingClientRect().height})),
    bodyWidth: body.width,
    numAlign: num ? getComputedStyle(num).textAlign : null,
    resources: performance.getEntriesByType("resource").map(e => e.name),
  };
  const pre = document.createElement("pre");
  pre.id = "check";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str | None:
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)


def test_report_html_renders_in_headless_chromium_without_network(written_report: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium found (chromium on PATH or /usr/bin/chromium); scripts/test installs it as root")
    page = (written_report / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://", page)
    # the test's copy: the check script, allowed by the page's Content-Security-Policy (which otherwise forbids scripts)
    assert "default-src 'none'" in page
    probe = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    probe = probe.replace("</body>", CHECK_SCRIPT + "\n</body>", 1)
    (tmp_path / "probe.html").write_text(probe, encoding="utf-8")
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        # any network access would fail: every host unresolvable, every request through a dead proxy
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        (tmp_path / "probe.html").as_uri(),
    ]
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)
    found = re.search(r'<pre id="check">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    assert found, f"no check result in Chromium's DOM (exit {done.returncode}): {done.stderr[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))

    files = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (written_report / "report.md").read_text(encoding="utf-8"))
    assert len(result["images"]) == len(files) == 3
    for img, name in zip(result["images"], files, strict=True):
        assert img["complete"] and img["width"] > 0, f"{name} did not render"
        assert (img["width"], img["height"]) == _png_size(written_report / name)
        assert 0 < img["shown"] <= result["bodyWidth"] + 0.5  # max-width: 100%
    expected_rows = [len(t) - 1 for t in _Tables(page).tables]  # minus the header row
    assert [t["rows"] for t in result["tables"]] == expected_rows and all(r > 0 for r in expected_rows)
    assert all(t["height"] > 0 for t in result["tables"])
    assert result["numAlign"] == "right"  # the inline style applies
    assert result["resources"] == []  # nothing fetched: the figures are data URIs, the style is inline


def test_the_report_states_every_setting_changed_from_the_profile() -> None:
    from advnorm.config_file import resolve
    from advnorm.evaluation.report import _setting

    cfg = resolve("quick", overrides={"train.contrast_randomisation": 0.5, "loss.adv_lambda": 10.0, "train.seed": 2})
    text = _setting([_Domain("A"), _Domain("B")], cfg, [], [0, 1, 2])
    assert text.endswith(
        "Settings changed from the profile: `loss.adv_lambda` 10.0 (profile: 1.0); "
        "`train.contrast_randomisation` 0.5 (profile: 0.0). "
        "Trained on: not recorded (runs made before advnorm recorded the machine)."
    )


_XEON = {"cpu": "Xeon", "cpu_kernels": "AVX512", "threads": 2, "device": "cpu"}
_EPYC = {"cpu": "EPYC", "cpu_kernels": "AVX2", "threads": 1, "device": "cpu"}
_GPU = {"cpu": "EPYC", "cpu_kernels": "AVX2", "threads": 8, "device": "cuda:0", "gpu": "NVIDIA A100"}


@pytest.mark.parametrize(
    ("machines", "says"),
    [
        ([_XEON, _XEON], "Trained on: Xeon, AVX512 kernels, 2 threads. Another processor"),
        (
            [_XEON, _EPYC, _EPYC],
            "Trained on: Xeon, AVX512 kernels, 2 threads (1 of 3 runs); "
            "EPYC, AVX2 kernels, 1 thread (2 of 3 runs). Another",
        ),
        ([_XEON, None], "Trained on: Xeon, AVX512 kernels, 2 threads (1 of 2 runs); 1 of 2 runs not recorded."),
        ([_GPU], "Trained on: NVIDIA A100, AVX2 kernels, 8 threads. Another"),
        ([None, None], "Trained on: not recorded (runs made before advnorm recorded the machine)."),
    ],
)
def test_the_report_says_where_the_models_were_trained(machines: list, says: str) -> None:
    """The same seed on another CPU or thread count trains another model: the report names each machine used."""
    from advnorm.evaluation.report import _machines
    from advnorm.evaluation.results import Cell

    cells = [
        Cell("m", "standardized", s, {}, summary={} if m is None else {"machine": m}) for s, m in enumerate(machines)
    ]
    assert _machines(cells).startswith(says)
