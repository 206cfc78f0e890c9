"""Shapeset-3x2, the synthetic image task of Glorot & Bengio (2010), generated online.

Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
networks", AISTATS 2010, Section 2.1: 32x32 grey images holding one or two objects from
{triangle, parallelogram, ellipse}; shape parameters (side lengths, angles), scale,
rotation, position and grey level are random; a second object may overlap the first by at
most half of its area; 9 classes: the 3 single shapes and the 6 unordered pairs (a pair of
equal shapes included). Data are generated on the fly, so there is no fixed training set.

Everything is vectorized over a batch. Each object is drawn in a canonical frame, scaled to
a random pixel area, rotated by a random angle and placed at a random position that keeps
it inside the image; it is rasterized at pixel centres ``p`` with torch ops on a coordinate
grid:

* polygons (triangle = 4 vertices with the last repeated, parallelogram) by half-plane
  tests: ``p`` is inside when ``cross(v[k+1] - v[k], p - v[k]) >= 0`` for every edge ``k``
  (vertices counter-clockwise);
* ellipses by their quadratic form: ``(u / a)^2 + (v / b)^2 <= 1`` with ``(u, v)`` the
  offset from the centre in the ellipse's rotated frame and ``a, b`` its semi-axes.

For a pair, the second object is drawn on top; pairs whose overlap exceeds
``max_overlap`` times the smaller object's area (so it is at most half of *either* object)
are redrawn. The background grey level is random and each object is strictly brighter.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from initlab.data._rng import make_generator
from initlab.data.dataset import Dataset
from initlab.errors import InitlabError

ShapeKind = Literal["triangle", "parallelogram", "ellipse"]
SHAPE_KINDS: tuple[str, ...] = get_args(ShapeKind)
TRIANGLE, PARALLELOGRAM, ELLIPSE, NONE = 0, 1, 2, -1

# Class label -> the kinds of its objects (NONE where an image has one object only).
CLASS_KINDS: tuple[tuple[int, int], ...] = (
    (TRIANGLE, NONE),
    (PARALLELOGRAM, NONE),
    (ELLIPSE, NONE),
    (TRIANGLE, TRIANGLE),
    (TRIANGLE, PARALLELOGRAM),
    (TRIANGLE, ELLIPSE),
    (PARALLELOGRAM, PARALLELOGRAM),
    (PARALLELOGRAM, ELLIPSE),
    (ELLIPSE, ELLIPSE),
)
SHAPESET_CLASSES: tuple[str, ...] = tuple(
    "+".join(SHAPE_KINDS[k] for k in kinds if k != NONE) for kinds in CLASS_KINDS
)
NUM_CLASSES = len(CLASS_KINDS)
_MAX_ROUNDS = 200  # redraw rounds for the overlap constraint before giving up


@dataclass(frozen=True)
class ShapesetConfig:
    """The knobs of the generator; the defaults give the images of Glorot & Bengio's figure."""

    image_size: int = 32  # images are image_size x image_size
    single_area: tuple[float, float] = (80.0, 260.0)  # pixel area of a lone object, uniform
    pair_area: tuple[float, float] = (50.0, 160.0)  # pixel area of each object of a pair
    background: tuple[float, float] = (0.0, 0.5)  # background grey level, uniform
    min_contrast: float = 0.2  # every object is at least this much brighter than background
    max_overlap: float = 0.5  # overlap <= max_overlap * (area of the smaller object)
    min_pixels: int = 12  # an object covering fewer pixels is redrawn

    def __post_init__(self) -> None:
        for name in ("single_area", "pair_area", "background"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise InitlabError(f"shapeset {name} must be a range lo <= hi, got {(lo, hi)}")
        if self.image_size < 8:
            raise InitlabError(f"shapeset image_size must be >= 8, got {self.image_size}")
        if self.background[1] + self.min_contrast > 1.0:
            raise InitlabError("shapeset background[1] + min_contrast must be <= 1")
        if not 0.0 < self.max_overlap <= 1.0:
            raise InitlabError(f"shapeset max_overlap must be in (0, 1], got {self.max_overlap}")


@dataclass
class ShapesetBatch:
    """Images with everything that was drawn in them (for tests and figures)."""

    images: Tensor  # float32 [B, H, W] in [0, 1]
    labels: Tensor  # int64 [B], index into SHAPESET_CLASSES
    kinds: Tensor  # int64 [B, 2]: kind of the first and second object, -1 for none
    masks: Tensor  # bool [B, 2, H, W]: pixels covered by each object (second drawn on top)
    background: Tensor  # float32 [B]
    foreground: Tensor  # float32 [B, 2]


@dataclass
class _Objects:
    """Parameters of M objects in pixel coordinates."""

    kind: Tensor  # int64 [M]
    vertices: Tensor  # float32 [M, 4, 2] polygon vertices, counter-clockwise (unused: ellipses)
    center: Tensor  # float32 [M, 2]
    angle: Tensor  # float32 [M]
    axes: Tensor  # float32 [M, 2] ellipse semi-axes (unused: polygons)


def _sample_objects(
    kind: Tensor, area: tuple[float, float], size: int, gen: torch.Generator
) -> _Objects:
    """Draw shape parameters, area, rotation and position for objects of the given kinds."""
    m = kind.shape[0]
    u = torch.rand(m, 9, generator=gen)
    apex_x, apex_y = u[:, 0], 0.5 + 0.7 * u[:, 1]  # triangle (0,0), (1,0), (apex_x, apex_y)
    side, skew = 0.5 + 0.5 * u[:, 2], math.pi / 4 + math.pi / 2 * u[:, 3]  # parallelogram
    ratio = 0.4 + 0.6 * u[:, 4]  # ellipse semi-axes 0.5 and 0.5 * ratio
    angle = 2 * math.pi * u[:, 5]
    target = area[0] + (area[1] - area[0]) * u[:, 6]

    zeros, ones = torch.zeros(m), torch.ones(m)
    apex = torch.stack([apex_x, apex_y], 1)
    tri = torch.stack(
        [torch.stack([zeros, zeros], 1), torch.stack([ones, zeros], 1), apex, apex], 1
    )
    b = torch.stack([side * torch.cos(skew), side * torch.sin(skew)], 1)
    origin, a = torch.zeros(m, 2), torch.stack([ones, zeros], 1)
    par = torch.stack([origin, a, a + b, b], 1)
    is_tri = (kind == TRIANGLE)[:, None, None]
    poly = torch.where(is_tri, tri, par)
    centroid = torch.where(is_tri[:, :, 0], tri[:, :3].mean(1), par.mean(1))
    unit_area = torch.where(
        kind == TRIANGLE,
        apex_y / 2,
        torch.where(kind == PARALLELOGRAM, side * torch.sin(skew), math.pi * 0.25 * ratio),
    )
    scale = torch.sqrt(target / unit_area)

    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # [M,2,2]
    offsets = scale[:, None, None] * torch.einsum("mij,mkj->mki", rot, poly - centroid[:, None])
    axes = torch.stack([0.5 * scale, 0.5 * scale * ratio], 1)
    half = torch.stack(
        [
            torch.sqrt((axes[:, 0] * cos) ** 2 + (axes[:, 1] * sin) ** 2),
            torch.sqrt((axes[:, 0] * sin) ** 2 + (axes[:, 1] * cos) ** 2),
        ],
        1,
    )
    is_ell = (kind == ELLIPSE)[:, None]
    low = torch.where(is_ell, -half, offsets.amin(1))  # [M, 2] extent below the centre
    high = torch.where(is_ell, half, offsets.amax(1))
    lo_c, hi_c = -low + 0.5, size - high - 0.5  # keep half a pixel of margin
    center = torch.where(hi_c > lo_c, lo_c + (hi_c - lo_c) * u[:, 7:9], (lo_c + hi_c) / 2)
    return _Objects(kind, offsets + center[:, None], center, angle, axes)


def _pixel_grid(size: int) -> tuple[Tensor, Tensor]:
    """x (column) and y (row) coordinates of the pixel centres, flattened: [H*W] each."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return x.reshape(-1), y.reshape(-1)


def rasterize_polygons(vertices: Tensor, size: int) -> Tensor:
    """Masks [M, size*size] of convex polygons given by counter-clockwise ``vertices`` [M, K, 2].

    Half-plane test at every pixel centre ``p``: inside iff ``cross(e_k, p - v_k) >= 0`` for
    all edges ``e_k = v_{k+1} - v_k``. Each test is affine in ``p``,
    ``-e_y p_x + e_x p_y + (e_y v_x - e_x v_y)``, so all edges of all polygons are one matrix
    product with the grid ``[p_x; p_y; 1]``. A repeated vertex gives a zero edge, which every
    point passes, so triangles share the 4-vertex layout of parallelograms.
    """
    px, py = _pixel_grid(size)
    grid = torch.stack([px, py, torch.ones_like(px)])  # [3, H*W]
    ex, ey = (torch.roll(vertices, -1, dims=1) - vertices).unbind(-1)
    vx, vy = vertices.unbind(-1)
    coef = torch.stack([-ey, ex, ey * vx - ex * vy], dim=-1)  # [M, K, 3]
    return (coef @ grid).amin(dim=1) >= 0


def rasterize_ellipses(center: Tensor, angle: Tensor, axes: Tensor, size: int) -> Tensor:
    """Masks [M, size*size] of ellipses: ``(u/a)^2 + (v/b)^2 <= 1`` in the rotated frame."""
    px, py = _pixel_grid(size)
    dx, dy = px - center[:, 0:1], py - center[:, 1:2]
    cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    u = (dx * cos + dy * sin) / axes[:, 0:1]
    v = (-dx * sin + dy * cos) / axes[:, 1:2]
    return u * u + v * v <= 1.0


def _rasterize(objects: _Objects, size: int) -> Tensor:
    masks = torch.zeros(objects.kind.shape[0], size * size, dtype=torch.bool)
    poly = torch.nonzero((objects.kind == TRIANGLE) | (objects.kind == PARALLELOGRAM)).squeeze(1)
    ell = torch.nonzero(objects.kind == ELLIPSE).squeeze(1)
    if poly.numel():
        masks[poly] = rasterize_polygons(objects.vertices[poly], size)
    if ell.numel():
        masks[ell] = rasterize_ellipses(
            objects.center[ell], objects.angle[ell], objects.axes[ell], size
        )
    return masks


def _draw_layout(
    labels: Tensor, config: ShapesetConfig, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Masks [B, 2, H*W] and kinds [B, 2] of each image's objects, redrawn until valid."""
    size, n = config.image_size, labels.shape[0]
    kinds = torch.tensor(CLASS_KINDS, dtype=torch.int64)[labels]  # [B, 2]
    swap = torch.rand(n, generator=gen) < 0.5  # which object of a mixed pair lies below
    pair = kinds[:, 1] != NONE
    kinds = torch.where((swap & pair)[:, None], kinds.flip(1), kinds)
    masks = torch.zeros(n, 2, size * size, dtype=torch.bool)
    todo = torch.arange(n)
    for _ in range(_MAX_ROUNDS):
        k, is_pair = kinds[todo], pair[todo]
        first = torch.zeros(len(todo), size * size, dtype=torch.bool)
        second = torch.zeros_like(first)
        for rows, area in ((~is_pair, config.single_area), (is_pair, config.pair_area)):
            idx = torch.nonzero(rows).squeeze(1)
            if idx.numel():
                first[idx] = _rasterize(_sample_objects(k[idx, 0], area, size, gen), size)
        idx = torch.nonzero(is_pair).squeeze(1)
        if idx.numel():
            second[idx] = _rasterize(_sample_objects(k[idx, 1], config.pair_area, size, gen), size)
        a1, a2 = first.sum(1, dtype=torch.int32), second.sum(1, dtype=torch.int32)
        overlap = (first & second).sum(1, dtype=torch.int32)
        ok = (a1 >= config.min_pixels) & (
            ~is_pair
            | ((a2 >= config.min_pixels) & (overlap <= config.max_overlap * torch.minimum(a1, a2)))
        )
        done = todo[ok]
        masks[done, 0], masks[done, 1] = first[ok], second[ok]
        todo = todo[~ok]
        if todo.numel() == 0:
            return masks, kinds
    raise RuntimeError(f"shapeset: {todo.numel()} images still violate the overlap constraint")


def shapeset_batch(
    batch_size: int,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    config: ShapesetConfig | None = None,
) -> ShapesetBatch:
    """Draw ``batch_size`` Shapeset-3x2 images with uniformly random classes."""
    if batch_size < 1:
        raise InitlabError(f"batch_size must be a positive integer, got {batch_size}")
    config = config or ShapesetConfig()
    gen = make_generator(seed, generator)
    size = config.image_size
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), generator=gen)
    masks, kinds = _draw_layout(labels, config, gen)
    bg_lo, bg_hi = config.background
    background = bg_lo + (bg_hi - bg_lo) * torch.rand(batch_size, generator=gen)
    lowest = background + config.min_contrast
    foreground = lowest[:, None] + (1.0 - lowest[:, None]) * torch.rand(
        batch_size, 2, generator=gen
    )
    images = background[:, None].expand(-1, size * size).clone()
    for j in range(2):  # the second object is painted over the first
        images = torch.where(masks[:, j], foreground[:, j : j + 1], images)
    return ShapesetBatch(
        images=images.view(batch_size, size, size),
        labels=labels,
        kinds=kinds,
        masks=masks.view(batch_size, 2, size, size),
        background=background,
        foreground=foreground,
    )


def _generate(
    n: int, gen: torch.Generator, config: ShapesetConfig, chunk: int
) -> tuple[Tensor, Tensor]:
    xs, ys = [], []
    for start in range(0, n, chunk):
        batch = shapeset_batch(min(chunk, n - start), generator=gen, config=config)
        xs.append(batch.images)
        ys.append(batch.labels)
    return torch.cat(xs), torch.cat(ys)


def shapeset_stream(
    batch_size: int,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    steps: int | None = None,
    config: ShapesetConfig | None = None,
    flatten: bool = True,
) -> Iterator[tuple[Tensor, Tensor]]:
    """The online task: an endless stream (or ``steps`` batches) of fresh ``(x, y)`` batches.

    ``x`` is float32 ``[B, H*W]`` (``[B, 1, H, W]`` without ``flatten``), ``y`` int64 ``[B]``.
    Every example is new, as in Glorot & Bengio's online training.
    """
    if batch_size < 1:
        raise InitlabError(f"batch_size must be a positive integer, got {batch_size}")
    config = config or ShapesetConfig()
    gen = make_generator(seed, generator)
    count = 0
    while steps is None or count < steps:
        batch = shapeset_batch(batch_size, generator=gen, config=config)
        yield _layout(batch.images, flatten), batch.labels
        count += 1


def _layout(images: Tensor, flatten: bool) -> Tensor:
    return images.reshape(images.shape[0], -1) if flatten else images.unsqueeze(1)


def make_shapeset(
    n: int,
    *,
    seed: int = 0,
    config: ShapesetConfig | None = None,
    flatten: bool = True,
    name: str = "shapeset3x2",
    chunk: int = 8192,
) -> Dataset:
    """A fixed set of ``n`` Shapeset-3x2 images: the same ``seed`` gives the same images."""
    if n < 1:
        raise InitlabError(f"a shapeset needs n >= 1 images, got {n}")
    x, y = _generate(n, torch.Generator().manual_seed(seed), config or ShapesetConfig(), chunk)
    return Dataset(_layout(x, flatten), y, name, SHAPESET_CLASSES)


def split_seed(seed: int, split: str) -> int:
    """A seed for one split derived from the master seed, independent of the split sizes."""
    digest = hashlib.sha256(f"shapeset3x2/{seed}/{split}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def shapeset_splits(
    n_train: int,
    n_valid: int,
    n_test: int,
    *,
    seed: int = 0,
    config: ShapesetConfig | None = None,
    flatten: bool = True,
) -> tuple[Dataset, Dataset, Dataset]:
    """Fixed train / valid / test sets, each drawn from its own seed derived from ``seed``.

    The valid and test sets do not change when ``n_train`` does.
    """
    sets = []
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        sets.append(
            make_shapeset(
                n,
                seed=split_seed(seed, split),
                config=config,
                flatten=flatten,
                name=f"shapeset3x2-{split}",
            )
        )
    return sets[0], sets[1], sets[2]
