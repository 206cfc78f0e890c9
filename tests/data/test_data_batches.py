"""Dataset, train/valid split, minibatch streams and Gaussian inputs."""

import math

import pytest
import torch

from initlab.data import Dataset, gaussian_inputs, minibatches, train_valid_split
from initlab.errors import InitlabError


def _toy(n: int = 50) -> Dataset:
    x = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3)
    return Dataset(x, torch.arange(n) % 5, "toy")


def test_dataset_basics() -> None:
    ds = _toy(50)
    assert len(ds) == 50 and ds.num_classes == 5 and ds.num_features == 3
    assert ds.class_counts() == [10] * 5
    head = ds.head(7)
    assert len(head) == 7 and torch.equal(head.x, ds.x[:7])
    sub = ds.subset([3, 1])
    assert sub.y.tolist() == [3, 1]
    named = Dataset(ds.x, ds.y, "named", classes=tuple("abcdefgh"))
    assert named.num_classes == 8  # from the class names, not from max(y)
    with pytest.raises(InitlabError, match="50 inputs but 49 labels"):
        Dataset(ds.x, ds.y[:49], "bad")
    with pytest.raises(InitlabError, match="has 50 examples, asked for 51"):
        ds.head(51)


def test_train_valid_split_sizes_disjoint_and_seeded() -> None:
    ds = _toy(500)
    train, valid = train_valid_split(ds, 0.2, seed=3)
    assert (len(train), len(valid)) == (400, 100)
    # rows of x are unique, so the first column identifies an example
    ids_t, ids_v = set(train.x[:, 0].tolist()), set(valid.x[:, 0].tolist())
    assert not ids_t & ids_v and len(ids_t | ids_v) == 500
    again_t, _ = train_valid_split(ds, 0.2, seed=3)
    other_t, _ = train_valid_split(ds, 0.2, seed=4)
    assert torch.equal(again_t.x, train.x)
    assert not torch.equal(other_t.x, train.x)
    for bad in (0.0, 1.0, 0.0001):
        with pytest.raises(InitlabError):
            train_valid_split(ds, bad, seed=0)


def test_epoch_mode_covers_every_index_once_per_epoch() -> None:
    batches = list(minibatches(10, 3, epochs=4, mode="epoch", seed=0))
    assert [len(b) for b in batches] == [3, 3, 3, 1] * 4
    for e in range(4):
        epoch = torch.cat(batches[4 * e : 4 * e + 4])
        assert sorted(epoch.tolist()) == list(range(10))
    assert all(b.dtype == torch.int64 for b in batches)
    # a new permutation each epoch (probability of two equal ones: 1/10! per pair)
    assert not torch.equal(torch.cat(batches[0:4]), torch.cat(batches[4:8]))


def test_epoch_mode_drop_last_and_steps_across_epochs() -> None:
    dropped = list(minibatches(10, 3, epochs=2, drop_last=True, seed=1))
    assert [len(b) for b in dropped] == [3, 3, 3] * 2
    assert len(set(torch.cat(dropped[:3]).tolist())) == 9
    stream = list(minibatches(10, 4, steps=7, seed=1))  # 3 batches per epoch, 7 steps
    assert [len(b) for b in stream] == [4, 4, 2, 4, 4, 2, 4]
    assert sorted(torch.cat(stream[3:6]).tolist()) == list(range(10))
    with pytest.raises(InitlabError, match="drop_last"):
        minibatches(3, 4, epochs=1, drop_last=True)


def test_replacement_mode_is_uniform_with_replacement() -> None:
    n, b, steps = 5, 4, 2500
    batches = list(minibatches(n, b, steps=steps, mode="replacement", seed=0))
    assert len(batches) == steps and all(len(x) == b for x in batches)
    counts = torch.bincount(torch.cat(batches), minlength=n).float()
    # each index: Binomial(10000, 0.2): mean 2000, std 40; allow 5 std
    assert (counts - 2000).abs().max() < 200
    # with replacement: repeats inside a batch happen (P(no repeat) = 5*4*3*2/5^4 = 0.19)
    repeats = sum(len(set(x.tolist())) < b for x in batches)
    assert 0.7 < repeats / steps < 0.9
    # an epoch in replacement mode is ceil(n / b) draws, like the book's iter_per_epoch
    assert len(list(minibatches(1000, 100, epochs=3, mode="replacement", seed=0))) == 30
    assert len(list(minibatches(60000, 128, epochs=1, mode="replacement", seed=0))) == math.ceil(
        60000 / 128
    )


def test_minibatches_seed_generator_and_errors() -> None:
    a = [x.tolist() for x in minibatches(20, 6, epochs=2, seed=7)]
    gen = torch.Generator().manual_seed(7)
    b = [x.tolist() for x in minibatches(20, 6, epochs=2, generator=gen)]
    assert a == b
    assert a != [x.tolist() for x in minibatches(20, 6, epochs=2, seed=8)]
    with pytest.raises(InitlabError, match="valid: replacement, epoch"):
        minibatches(20, 6, mode="shuffle")
    with pytest.raises(InitlabError, match="not both"):
        minibatches(20, 6, seed=1, generator=torch.Generator())
    with pytest.raises(InitlabError, match="batch_size"):
        minibatches(20, 0)
    assert list(minibatches(20, 6, steps=0, seed=0)) == []
    # steps and epochs together: whichever ends first
    assert len(list(minibatches(20, 6, steps=100, epochs=2, seed=0))) == 8


def test_gaussian_inputs_moments_and_seed() -> None:
    x = gaussian_inputs(1000, 100, seed=0)
    assert x.shape == (1000, 100) and x.dtype == torch.float32
    # 1e5 samples: std of the sample mean 0.003; of the sample std about 0.0022
    assert abs(x.mean().item()) < 0.015
    assert abs(x.std().item() - 1.0) < 0.011
    y = gaussian_inputs(1000, 100, seed=0, mean=2.0, std=0.5)
    assert torch.allclose(y, 2.0 + 0.5 * x)
    assert torch.equal(gaussian_inputs(10, 3, seed=5), gaussian_inputs(10, 3, seed=5))
    assert not torch.equal(gaussian_inputs(10, 3, seed=5), gaussian_inputs(10, 3, seed=6))
    with pytest.raises(InitlabError):
        gaussian_inputs(0, 3, seed=0)
