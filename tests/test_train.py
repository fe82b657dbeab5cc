"""Specification of the one trainer (lenet_book.train) and the recipes (lenet_book.recipes).

Mechanics run on tiny stand-in tensors; what needs the real data says so. No test here measures
speed.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lenet_book import models, original, recipes
from lenet_book.train import argmax, split_validation, to_float, train


def tiny_data(n=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator)
    return images, torch.arange(n) % 10


def test_the_validation_split_is_the_last_10000_training_images():
    images = torch.arange(60000).view(60000, 1, 1).expand(60000, 28, 28)
    labels = torch.arange(60000)
    (fit_x, fit_y), (valid_x, valid_y) = split_validation((images, labels))
    assert len(fit_y) == 50000 and len(valid_y) == 10000
    assert torch.equal(valid_y, torch.arange(50000, 60000)) and torch.equal(fit_x[:, 0, 0], torch.arange(50000))
    with pytest.raises(ValueError, match="validation size"):
        split_validation((images, labels), size=60000)


def test_eval_sets_are_scored_after_every_epoch_under_their_names():
    data, held_out = tiny_data(), tiny_data(seed=1)
    history, seconds = train(models.lenet(), data, {"valid": held_out, "test": held_out}, num_epochs=2,
                             batch_size=4)
    assert [sorted(h) for h in history] == [["epoch", "loss", "test_acc", "train_acc", "valid_acc"]] * 2
    assert history[0]["valid_acc"] == history[0]["test_acc"] and seconds > 0


def test_the_scheduler_steps_after_every_batch():
    data = tiny_data()
    rates = []

    def scheduler(optimizer, epochs, steps_per_epoch):
        assert (epochs, steps_per_epoch) == (2, 3)  # 10 images in batches of 4: 4 + 4 + 2
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
        step = schedule.step
        schedule.step = lambda: (rates.append(optimizer.param_groups[0]["lr"]), step())
        return schedule

    train(models.lenet(), data, num_epochs=2, batch_size=4, lr=1.0, scheduler=scheduler)
    assert rates == pytest.approx([1 / k for k in range(1, 7)])


def test_batch_transform_and_predict_are_used():
    data = tiny_data()
    calls = []

    def transform(images, generator):
        calls.append(images.shape[0])
        return images.flip(-1)

    history, _ = train(models.lenet(), data, {"valid": tiny_data(seed=1)}, num_epochs=1, batch_size=4,
                       batch_transform=transform,
                       predict=lambda scores: (scores + torch.arange(10) * 0.5).argmax(dim=1))
    # first the checks, before any step: the first batch twice (as uint8, then as int16 to find
    # pixels wrapped past 255) and the short last one
    assert calls == [4, 4, 2, 4, 4, 2]
    assert history[0]["valid_acc"] == pytest.approx(0.1), "the prediction rule decides what counts as correct"


def test_the_same_seed_gives_the_same_run_and_another_seed_another():
    data = tiny_data(40)
    runs = []
    for seed in (0, 0, 1):
        net, options = recipes.build({**recipes.TEXT, "num_epochs": 1, "batch_size": 8}, seed)
        runs.append(train(net, data, **options)[0][-1]["loss"])
    assert runs[0] == runs[1] != runs[2]


def test_a_cuda_graph_cannot_record_a_schedule_or_a_transform():
    net, options = recipes.build(recipes.modern_recipe([name for name, _ in recipes.MODERN_STEPS]))
    with pytest.raises(ValueError, match="cuda_graph"):
        train(net, tiny_data(), cuda_graph=True, **options)


def test_train_with_the_texts_recipe_is_the_plain_sgd_loop():
    """Same start, same batch order: ``train`` and a hand-written loop reach the same weights."""
    data = tiny_data(20)
    torch.manual_seed(0)
    net = models.init_xavier(models.lenet())
    plain = copy.deepcopy(net)
    train(net, data, num_epochs=1, batch_size=8, seed=3)
    optimizer, loss_fn = torch.optim.SGD(plain.parameters(), lr=0.9), nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(3)
    for idx in torch.randperm(20, generator=generator).split(8):
        optimizer.zero_grad()
        loss_fn(plain(to_float(data[0][idx])), data[1][idx]).backward()
        optimizer.step()
    for a, b in zip(net.parameters(), plain.parameters()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", [name for name, _ in recipes.MODERN_STEPS])
def test_every_modern_step_builds_a_lenet_sized_network(name):
    net, options = recipes.build(recipes.modern_recipe([n for n, _ in recipes.MODERN_STEPS][:
                                 [n for n, _ in recipes.MODERN_STEPS].index(name) + 1]))
    assert models.num_parameters(net) <= 62_000
    assert {"num_epochs", "batch_size", "lr", "seed"} <= set(options)


def test_the_original_recipe_uses_the_papers_loss_prediction_and_schedule():
    net, options = recipes.build(recipes.ORIGINAL)
    assert models.num_parameters(net) == 60_000
    assert options["predict"] is original.predict
    optimizer = options["optimizer"](net.parameters())
    schedule = options["scheduler"](optimizer, 10, 3)
    rates = []
    for _ in range(30):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[::3] == pytest.approx([0.005 * f for f in original.LR_FACTORS])


def test_unknown_recipe_options_are_refused():
    with pytest.raises(ValueError, match="unknown recipe options"):
        recipes.build({**recipes.TEXT, "learning_rate": 0.1})


def test_argmax_is_the_default_prediction():
    assert argmax(torch.tensor([[0.1, 0.9], [2.0, -1.0]])).tolist() == [1, 0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA-graph path needs an NVIDIA GPU")
def test_the_cuda_graph_epoch_gives_the_plain_loops_weights():
    device = torch.device("cuda")
    images, labels = tiny_data(600)
    data = (images.to(device), labels.to(device))
    torch.manual_seed(0)
    net = models.init_xavier(models.lenet()).to(device)
    graphed = copy.deepcopy(net)
    plain_history, _ = train(net, data, num_epochs=2, batch_size=256, seed=1)
    graph_history, _ = train(graphed, data, num_epochs=2, batch_size=256, seed=1, cuda_graph=True)
    assert [h["loss"] for h in graph_history] == pytest.approx([h["loss"] for h in plain_history], rel=1e-4)
    for a, b in zip(net.parameters(), graphed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
