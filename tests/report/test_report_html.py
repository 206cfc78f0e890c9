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


def _wide_summaries(out: Path) -> None:
    """Summaries shaped as A1's (11 columns with per-layer lists, 15 runs) and B1's
    (a table per activation), written as run_experiment writes them (figures left out)."""
    import json
    import random

    rng = random.Random(0)
    rows = {}
    for act in ("sigmoid", "tanh", "relu"):
        for init in ("normal:std=1", "normal:std=0.01", "lecun_normal", "he_normal", "xavier"):
            layers = [rng.lognormvariate(-3, 3) for _ in range(5)]
            rows[f"{act}/{init}"] = {
                "activation": act,
                "init": init,
                "std_first": layers[0],
                "std_last": layers[-1],
                "std_ratio": layers[-1] / layers[0],
                "std_per_layer": layers,
                "mean_last": rng.random(),
                "near_ends_min": rng.random(),
                "near_ends_per_layer": [rng.random() for _ in range(5)],
                "zero_last": rng.random(),
                "zero_per_layer": [rng.random() for _ in range(5)],
            }
    inits = {"normal:std=0.01": 2.3017, "lecun_normal": 0.4684, "he_normal": 0.3170}
    by_activation = {
        "relu": {
            k: {"final_loss": v, "steps_to_loss_1": 168, "test_acc": 0.91, "runs": 1}
            for k, v in inits.items()
        }
    }
    for name, summary in (
        ("activation-histograms", rows),
        ("init-compare", {"chance_loss": 2.3026, "steps": 1000, "by_activation": by_activation}),
    ):
        (out / name).mkdir()
        doc = {"experiment": name, "description": name, "summary": summary, "config": {}}
        doc["provenance"] = {"initlab": "0.1.0", "seed": 0, "wall_time_s": 1.5}
        (out / name / "summary.json").write_text(json.dumps(doc))


def test_nested_tables_are_tables_not_json(tmp_path: Path) -> None:
    _wide_summaries(tmp_path)
    html = build_report(tmp_path).read_text()
    assert "<h4>by activation: relu</h4>" in html and "{&quot;final_loss" not in html
    assert "<th>steps to loss 1</th>" in html and "<th>test accuracy</th>" in html
    assert "<th>near ends per layer</th>" in html and "near_ends_per_layer" not in html
    assert html.count("<h2>Provenance</h2>") == 1 and "<th>wall time (s)</th>" in html


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"
)
def test_no_table_overflows_its_column_at_1400_px(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "ws"
    shutil.copytree(workspace, out)
    _wide_summaries(out)
    page = build_report(out)
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
        "--window-size=1400,1000",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    body = re.search(r"<body[^>]*>", done.stdout)
    assert body is not None, done.stderr[-2000:]
    total = re.search(r'data-tables-total="(\d+)"', body.group(0))
    wide = re.search(r'data-tables-overflowing="(\d+)"', body.group(0))
    assert total is not None and wide is not None, body.group(0)
    assert int(total.group(1)) >= 8  # A1's, B1's and the others' tables were measured
    assert wide.group(1) == "0"
