"""The one training loop (training/loop.py): steps, schedule, early stop, record hook, determinism; the fine-tune loop."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from landslide_wsss.training.loop import early_stop_record, epoch_batches, fine_tune, fit


def _toy():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    x = torch.randn(4, 3, 8, 8)
    y = (x[:, :1] > 0).float()
    return net, opt, (lambda step: (x, y)), torch.nn.functional.binary_cross_entropy_with_logits


def test_fit_runs_to_total_with_records_and_cosine_schedule():
    net, opt, batch, loss = _toy()
    seen, rates = [], []

    def record(step, mean_loss, spent, total):
        seen.append((step, total))
        rates.append(opt.param_groups[0]["lr"])
        net.eval()  # a record hook may evaluate: the loop puts the network back into training

    done = fit(net, opt, batch, loss, lr=0.1, total=25, warmup=5, record_every=10, on_record=record, bf16=False)
    assert done == 25
    assert seen == [(10, 25), (20, 25), (25, 25)]  # every 10 steps and at the end
    assert rates[0] > rates[1] > rates[2]  # cosine decay after the warm-up
    assert net.training


def test_fit_learns():
    net, opt, batch, loss = _toy()
    x, y = batch(0)
    before = float(loss(net(x), y))
    fit(net, opt, batch, loss, lr=0.05, total=60, warmup=2, bf16=False)
    assert float(loss(net(x), y)) < before * 0.7


def test_a_budget_only_stops_a_run_early_and_says_where():
    net, opt, batch, loss = _toy()
    records, events = [], []
    done = fit(net, opt, batch, loss, lr=0.1, total=50, max_minutes=0.0, record_every=100, bf16=False,
               on_record=lambda s, l, t, total: records.append((s, total)), log=lambda **r: events.append(r))
    assert done == 0 and records == []  # a budget already spent stops before the first step
    assert events == [{"event": "stopped_early", "step": 0, "total_steps": 50, "max_minutes": 0.0}]
    assert early_stop_record(done, 50, 0.0) == {"step": 0, "of": 50, "max_minutes": 0.0}
    net, opt, batch, loss = _toy()
    slow = lambda step: (time.sleep(0.02), batch(step))[1]  # noqa: E731
    done = fit(net, opt, slow, loss, lr=0.1, total=10 ** 6, max_minutes=0.3 / 60, record_every=10 ** 9, bf16=False,
               on_record=lambda s, l, t, total: records.append((s, total)))
    assert 0 < done < 10 ** 6 and records == [(done, 10 ** 6)]  # the last record comes at the early stop
    net, opt, batch, loss = _toy()
    assert fit(net, opt, batch, loss, lr=0.1, total=5, max_minutes=60, bf16=False) == 5
    assert early_stop_record(5, 5, 60) is None


def test_two_seeded_runs_give_the_same_weights():
    """The same steps from the same seed and data, twice: identical weights, byte for byte."""
    def run():
        torch.manual_seed(3)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                  torch.nn.Conv2d(8, 1, 1))
        opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
        imgs = np.random.default_rng(0).integers(1, 255, (8, 3, 16, 16)).astype(np.uint8)
        masks = (imgs[:, 0] > 128).astype(np.float32)
        batches = epoch_batches(imgs, masks, batch_size=4, seed=5, normalize=lambda x: x / 255,
                                band_std=torch.full((3,), 60.0), pixel_targets=True)
        fit(net, opt, batches, lambda o, y: torch.nn.functional.binary_cross_entropy_with_logits(o[:, 0].float(), y),
            lr=1e-2, total=12, warmup=2)
        return {k: v.clone() for k, v in net.state_dict().items()}
    a, b = run(), run()
    assert torch.are_deterministic_algorithms_enabled()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_without_a_step_count_is_an_error():
    net, opt, batch, loss = _toy()
    with pytest.raises(ValueError):
        fit(net, opt, batch, loss, lr=0.1, total=None, max_minutes=5)


def test_epoch_batches_are_seeded_per_epoch_and_follow_fresh_chips():
    imgs = np.random.default_rng(0).integers(1, 255, (8, 3, 8, 8)).astype(np.uint8)
    labels = np.arange(8, dtype=np.float32)
    norm = lambda x: x  # noqa: E731
    a = epoch_batches(imgs, labels, batch_size=4, seed=1, normalize=norm, band_std=torch.ones(3), jitter=0.0)
    b = epoch_batches(imgs, labels, batch_size=4, seed=1, normalize=norm, band_std=torch.ones(3), jitter=0.0)
    first = [a(s)[1].tolist() for s in range(2)]
    assert first == [b(s)[1].tolist() for s in range(2)]
    assert sorted(sum(first, [])) == labels.tolist()  # one epoch is one permutation
    resumed = epoch_batches(imgs, labels, batch_size=4, seed=1, normalize=norm, band_std=torch.ones(3), jitter=0.0)
    assert resumed(2)[1].tolist() == a(2)[1].tolist()  # a run resumed at an epoch boundary draws the same

    class Chips:
        def __init__(self, k):
            self.images, self.labels = imgs, labels + 100 * k
    c = epoch_batches(imgs, labels, batch_size=4, seed=1, normalize=norm, band_std=torch.ones(3), jitter=0.0,
                      epoch_chips=Chips, target_of=lambda ch: ch.labels)
    got = [c(s)[1] for s in range(6)]  # two steps per epoch
    assert got[1].max() < 8 and 100 <= got[2].min() <= got[3].max() < 200 and got[4].min() >= 200


def test_fine_tune_stops_at_steps_or_when_the_step_says_so():
    logged = []
    done, _ = fine_tune(lambda k: {"event": "step", "step": k}, steps=12, max_minutes=None,
                        log=lambda **r: logged.append(r["step"]))
    assert done == 12 and logged == [0, 10, 11]
    done, _ = fine_tune(lambda k: None if k == 5 else {"event": "step", "step": k}, steps=None, max_minutes=None,
                        log=lambda **r: None)
    assert done == 5
    done, _ = fine_tune(lambda k: {"event": "step", "step": k}, steps=100, max_minutes=1e-9, log=lambda **r: None,
                        spent=1.0)
    assert done == 0  # the budget was already used
