"""Shapeset-3x2: rasterization, labels versus drawn objects, overlap, balance, seeds."""

import math

import pytest
import torch

from initlab.data import shapeset as S
from initlab.data.preview import class_grid, save_sample_grid
from initlab.errors import InitlabError


def _components(mask: torch.Tensor) -> int:
    """Number of 8-connected components of a 2-D bool mask (flood fill).

    8-connectivity, because a thin acute tip rasterizes to pixels that touch only at corners.
    """
    grid = mask.tolist()
    h, w = len(grid), len(grid[0])
    seen: set[tuple[int, int]] = set()
    count = 0
    for start in ((i, j) for i in range(h) for j in range(w) if grid[i][j]):
        if start in seen:
            continue
        count += 1
        seen.add(start)
        stack = [start]
        while stack:
            i, j = stack.pop()
            for a, b in ((i + di, j + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)):
                if 0 <= a < h and 0 <= b < w and grid[a][b] and (a, b) not in seen:
                    seen.add((a, b))
                    stack.append((a, b))
    return count


def test_rasterized_areas_match_the_formulas() -> None:
    square = torch.tensor([[[4.0, 4.0], [20.0, 4.0], [20.0, 20.0], [4.0, 20.0]]])
    assert S.rasterize_polygons(square, 32).sum().item() == 16 * 16  # exact: no centre on edge
    # triangle with a repeated vertex, area 0.5 * 24 * 20 = 240
    tri = torch.tensor([[[3.0, 5.0], [27.0, 5.0], [11.0, 25.0], [11.0, 25.0]]])
    assert S.rasterize_polygons(tri, 32).sum().item() == pytest.approx(240, rel=0.05)
    # clockwise vertices are outside everywhere: the half-plane test needs counter-clockwise
    assert S.rasterize_polygons(square.flip(1), 32).sum().item() == 0
    ell = S.rasterize_ellipses(
        torch.tensor([[16.0, 16.0]]), torch.tensor([0.6]), torch.tensor([[12.0, 6.0]]), 32
    )
    assert ell.sum().item() == pytest.approx(math.pi * 12 * 6, rel=0.05)


def test_classes_are_balanced_and_named() -> None:
    labels = S.make_shapeset(1800, seed=0).y
    counts = torch.bincount(labels, minlength=9)
    # Binomial(1800, 1/9): mean 200, std 13.3; allow 5 std
    assert (counts - 200).abs().max().item() < 67
    assert S.SHAPESET_CLASSES[0] == "triangle" and S.SHAPESET_CLASSES[8] == "ellipse+ellipse"
    assert len(set(S.SHAPESET_CLASSES)) == 9


def test_labels_match_the_drawn_objects() -> None:
    config = S.ShapesetConfig()
    batch = S.shapeset_batch(300, seed=1, config=config)
    table = torch.tensor(S.CLASS_KINDS)
    assert torch.equal(batch.kinds.sort(1).values, table[batch.labels].sort(1).values)
    for i in range(300):
        img, bg, m = batch.images[i], batch.background[i], batch.masks[i]
        single = batch.kinds[i, 1].item() == S.NONE
        assert m[0].sum() >= config.min_pixels
        assert (img[~(m[0] | m[1])] == bg).all()  # background elsewhere
        assert (img[m[0] | m[1]] >= bg + config.min_contrast - 1e-6).all()  # brighter objects
        if single:
            assert m[1].sum() == 0
            # one connected blob brighter than the background, exactly the object
            assert _components(img > bg) == 1 and torch.equal(img > bg, m[0])
        else:
            a1, a2 = m[0].sum().item(), m[1].sum().item()
            assert a2 >= config.min_pixels
            assert (m[0] & m[1]).sum().item() <= 0.5 * min(a1, a2)
            # the second object is painted on top: its pixels carry its grey level
            assert torch.allclose(img[m[1]], batch.foreground[i, 1].expand(a2))


def test_object_sizes_follow_the_configured_areas() -> None:
    batch = S.shapeset_batch(600, seed=2)
    single = batch.kinds[:, 1] == S.NONE
    areas = batch.masks[single, 0].sum((1, 2)).float()
    lo, hi = S.ShapesetConfig().single_area
    # pixel counts follow the drawn areas up to edge effects (about the perimeter / 2)
    assert areas.min() > 0.7 * lo and areas.max() < 1.2 * hi
    assert areas.mean().item() == pytest.approx((lo + hi) / 2, rel=0.1)


def test_seeded_and_deterministic() -> None:
    a = S.make_shapeset(64, seed=5)
    b = S.make_shapeset(64, seed=5)
    c = S.make_shapeset(64, seed=6)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    assert a.x.shape == (64, 1024) and a.x.dtype == torch.float32 and a.num_classes == 9
    assert a.x.min().item() >= 0.0 and a.x.max().item() <= 1.0
    assert torch.equal(S.make_shapeset(64, seed=5, chunk=64).x, a.x)  # one chunk either way


def test_online_stream_and_fixed_splits() -> None:
    stream = list(S.shapeset_stream(16, seed=3, steps=3, flatten=False))
    assert len(stream) == 3 and stream[0][0].shape == (16, 1, 32, 32)
    again = list(S.shapeset_stream(16, seed=3, steps=3, flatten=False))
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(stream, again, strict=True))
    assert not torch.equal(stream[0][0], stream[1][0])  # every batch is new
    tr, va, te = S.shapeset_splits(40, 10, 12, seed=0)
    assert (len(tr), len(va), len(te)) == (40, 10, 12)
    _, va2, te2 = S.shapeset_splits(80, 10, 12, seed=0)
    assert torch.equal(va.x, va2.x) and torch.equal(te.x, te2.x)  # independent of n_train
    assert not torch.equal(tr.x[:10], va.x)


def test_bad_configs_are_one_line_errors() -> None:
    with pytest.raises(InitlabError, match="background"):
        S.ShapesetConfig(background=(0.0, 0.9), min_contrast=0.2)
    with pytest.raises(InitlabError, match="max_overlap"):
        S.ShapesetConfig(max_overlap=0.0)
    with pytest.raises(InitlabError, match="batch_size"):
        S.shapeset_batch(0)


def test_sample_grid_png(tmp_path) -> None:
    data = S.make_shapeset(90, seed=0)
    path = save_sample_grid(class_grid(data, 2), tmp_path / "grid.png", n=18, ncols=9)
    head = path.read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    picked = class_grid(data, 2)
    assert picked.y.tolist() == [c for c in range(9) for _ in range(2)]
