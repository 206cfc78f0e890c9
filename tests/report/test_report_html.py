"""The HTML report: built from a workspace, every figure it references exists and renders."""

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from initlab.errors import InitlabError
from initlab.experiments import run_experiment
from initlab.report import build_report

CHROMIUM = Path("/usr/bin/chromium")


class _Links(HTMLParser):
    """Collects img src, a href, section ids and table count."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "img":
            self.images.append(attr["src"] or "")
        if tag == "a" and attr.get("href"):
            self.links.append(attr["href"] or "")
        if attr.get("id"):
            self.ids.append(attr["id"] or "")
        self.tables += tag == "table"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two quick experiments in one workspace."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ws")
    run_experiment("exploding-product", ["seeds=2", "points=21"], out_dir=out, progress=False)
    run_experiment("optimizer-paths", ["grid=41", "steps=10"], out_dir=out, progress=False)
    torch.set_num_threads(threads)
    return out


def test_workspace_report_references_existing_files(workspace: Path) -> None:
    page = build_report(workspace)
    assert page == workspace / "report.html"
    html = page.read_text()
    parser = _Links()
    parser.feed(html)
    assert parser.ids == ["exploding-product", "optimizer-paths", "provenance"]  # lesson order
    assert len(parser.images) == 2
    for ref in [*parser.images, *parser.links]:
        if ref.startswith("#"):
            assert ref[1:] in parser.ids
            continue
        assert not ref.startswith(("/", "http")), ref  # relative: the folder can move
        assert (page.parent / ref).is_file(), ref
    assert sorted({Path(r).suffix for r in parser.links if not r.startswith("#")}) == [".svg"]
    # per experiment: verdicts, headline numbers, runs, settings; provenance once
    assert html.count('<ul class="verdicts">') == 2
    assert "decades per multiplication" in html
    assert html.count(torch.__version__) == 1 and "torch threads" in html
    assert html.count("<h2>Provenance</h2>") == 1 and "<h3>Provenance</h3>" not in html
    assert "<td><code>multiplications</code></td>" in html
    assert "<th>runs</th>" in html and "<td>nesterov</td>" in html  # optimizer-paths' table
    assert "<th>final distance</th>" in html and "final_distance" not in html  # human headers
    assert "empty (the default)" in html  # optimizer-paths' lr = {} and start = ()
    # 2 tables per experiment (numbers, settings), optimizer-paths' run table, provenance's 2
    assert parser.tables == 7


def test_single_experiment_report_and_errors(workspace: Path) -> None:
    page = build_report(workspace, ["optimizer-paths"])
    assert page == workspace / "optimizer-paths" / "report.html"
    images = re.findall(r'<img src="([^"]+)"', page.read_text())
    assert images == ["optimizer-paths-book.png"]
    with pytest.raises(InitlabError, match="no results for depth-scan"):
        build_report(workspace, ["depth-scan"])
    with pytest.raises(InitlabError, match="no experiment results in"):
        build_report(workspace / "nothing-here")


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"
)
def test_every_image_renders_in_headless_chromium(workspace: Path, tmp_path: Path) -> None:
    page = build_report(workspace)
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    body = re.search(r"<body[^>]*>", done.stdout)
    assert body is not None, done.stderr[-2000:]
    total = re.search(r'data-images-total="(\d+)"', body.group(0))
    loaded = re.search(r'data-images-loaded="(\d+)"', body.group(0))
    assert total is not None and loaded is not None, body.group(0)
    assert int(total.group(1)) == 2
    assert loaded.group(1) == total.group(1)  # every <img> decoded with a non-zero width
