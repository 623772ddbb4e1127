"""CycleGAN networks, training step, checkpoint/resume and the embedding into a model file.
Tiny models (ngf 4, 1 block, 32 px) on synthetic chips: fast, no data needed."""
import numpy as np
import pytest
import torch

from landslide_wsss.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from landslide_wsss.errors import ModelError
from landslide_wsss.models.cyclegan import (
    PatchDiscriminator,
    ResnetGenerator,
    add_generator_to_model,
    generator_meta,
    init_weights,
    load_generator,
    translate,
)
from landslide_wsss.training.cyclegan import CycleGANConfig, CycleGANTrainer, ImagePool, train_cyclegan


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; shared CPUs lose a lot to oversubscribed ones."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_cfg(**kw):
    base = dict(size=32, ngf=4, ndf=8, n_blocks=1, batch_size=2, epochs=1, epochs_decay=1, pool_size=3,
                bf16=False, threads=None)
    base.update(kw)
    return CycleGANConfig(**base)


def chips(n=6, c=3, size=32, seed=0, bright=False):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 120, (n, c, size, size)).astype(np.uint8)
    if bright:  # "landslide": a bright bare patch
        x[:, :3, 8:20, 8:20] = 230
    return x


def test_generator_shape_range_and_terrain_not_generated():
    g = init_weights(ResnetGenerator(spectral=3, cond=2, ngf=4, n_blocks=1))
    x = torch.randn(2, 5, 32, 32) * 3
    y = g(x)
    assert y.shape == (2, 3, 32, 32)  # only the spectral bands come out
    assert y.min() >= -1 and y.max() <= 1
    with pytest.raises(ValueError):
        g(torch.randn(1, 3, 32, 32))  # terrain channels are required inputs
    # terrain conditions the output: changing only terrain changes G(x)
    x2 = x.clone()
    x2[:, 3:] += 1.0
    assert not torch.allclose(g(x2), y)


def test_translate_any_size_numpy_and_torch():
    g = init_weights(ResnetGenerator(3, 0, 4, 1)).eval()
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 30, 45)).astype(np.float32)
    y = translate(g, x, autocast=False)
    assert isinstance(y, np.ndarray) and y.shape == (3, 3, 30, 45) and y.dtype == np.float32
    yt = translate(g, torch.from_numpy(x[0]), autocast=False)
    assert torch.is_tensor(yt) and yt.shape == (3, 30, 45)
    np.testing.assert_allclose(yt.numpy(), y[0], atol=1e-5)


def test_patch_discriminator_receptive_field_layout():
    d = init_weights(PatchDiscriminator(3, 8))
    out = d(torch.randn(1, 3, 128, 128))
    assert out.shape == (1, 1, 14, 14)  # the 70x70 PatchGAN on 128 px
    w = [m.weight for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert abs(float(torch.cat([t.detach().flatten() for t in w]).std()) - 0.02) < 0.005


def test_image_pool_keeps_history():
    pool = ImagePool(2, np.random.default_rng(0))
    a = torch.zeros(2, 3, 4, 4)
    assert torch.equal(pool.query(a), a)
    assert len(pool.images) == 2
    out = pool.query(torch.ones(8, 3, 4, 4))
    assert out.shape == (8, 3, 4, 4) and (out.sum(dim=(1, 2, 3)) == 0).any()  # some old fakes returned


def test_training_lowers_generator_loss():
    torch.manual_seed(0)
    A, B = chips(8, bright=True, seed=1), chips(8, seed=2)
    from landslide_wsss.training.cyclegan import _to_input
    tr = CycleGANTrainer(tiny_cfg(lr=2e-3))
    a, b = _to_input(A[:4], 3), _to_input(B[:4], 3)
    first = tr.train_step(a, b)["g_total"]
    for _ in range(8):
        last = tr.train_step(a, b)["g_total"]
    assert np.isfinite(last) and last < first


def test_training_with_terrain_conditioning_runs():
    A, B = chips(4, c=4, bright=True), chips(4, c=4, seed=3)
    tr = CycleGANTrainer(tiny_cfg(cond=1))
    from landslide_wsss.training.cyclegan import _to_input
    losses = tr.train_step(_to_input(A[:2], 3), _to_input(B[:2], 3))
    assert all(np.isfinite(v) for v in losses.values())
    assert tr.G_A(torch.zeros(1, 4, 32, 32)).shape[1] == 3


def test_checkpoint_resume_is_exact(tmp_path):
    A, B = chips(8, bright=True, seed=1), chips(8, seed=2)
    quiet = lambda *a, **k: None  # noqa: E731
    # uninterrupted: 2 epochs
    full = train_cyclegan(A, B, tiny_cfg(max_steps_per_epoch=2), tmp_path / "full", resume=False, log=quiet)
    # interrupted after epoch 1, then resumed from the checkpoint
    part = train_cyclegan(A, B, tiny_cfg(max_steps_per_epoch=2, epochs_decay=0), tmp_path / "part", resume=False,
                          log=quiet)
    state = tmp_path / "part" / "state.safetensors"
    reloaded = CycleGANTrainer.load(state)
    for name in ("G_A", "G_B", "D_A", "D_B"):
        for (k, v), w in zip(part.nets[name].state_dict().items(), reloaded.nets[name].state_dict().values()):
            assert torch.equal(v, w), (name, k)
    assert reloaded.epoch == 1 and reloaded.step == 2
    # continue to the full schedule (the stored config says 1+0 epochs: override to 1+1)
    tensors, meta = load_checkpoint(state)
    meta["config"]["epochs_decay"] = 1
    save_checkpoint(state, tensors, meta)
    resumed = train_cyclegan(A, B, tiny_cfg(max_steps_per_epoch=2), tmp_path / "part", resume=True, log=quiet)
    assert resumed.epoch == 2
    for name in ("G_A", "D_B"):
        for v, w in zip(full.nets[name].state_dict().values(), resumed.nets[name].state_dict().values()):
            torch.testing.assert_close(v, w, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "full" / "samples_epoch02.png").stat().st_size > 0
    assert (tmp_path / "full" / "loss_curve.png").stat().st_size > 0


def test_lr_schedule_constant_then_linear():
    tr = CycleGANTrainer(tiny_cfg(epochs=2, epochs_decay=2))
    assert tr.lr_at(0) == tr.lr_at(1.9) == 2e-4
    assert tr.lr_at(3) == pytest.approx(1e-4)
    assert tr.lr_at(4) == 0


def test_generator_into_model_file(tmp_path):
    A, B = chips(4, bright=True), chips(4, seed=2)
    tr = train_cyclegan(A, B, tiny_cfg(max_steps_per_epoch=1, epochs_decay=0), tmp_path / "run", resume=False,
                        log=lambda *a: None)
    model = tmp_path / "default.safetensors"
    save_checkpoint(model, {"classifier.w": torch.ones(3)}, {"architecture": "x", "in_bands": 3, "version": "v1",
                                                             "keep": 1})
    add_generator_to_model(model, tmp_path / "run" / "state.safetensors")
    add_generator_to_model(model, tmp_path / "run" / "g_a_epoch01.safetensors")  # idempotent, replaces
    tensors, meta = load_checkpoint(model)
    assert meta["keep"] == 1 and meta["version"] == "v1" and "classifier.w" in tensors
    assert meta["generator"]["ngf"] == 4 and meta["generator"]["n_blocks"] == 1
    assert all(v.dtype == torch.float16 for k, v in tensors.items() if k.startswith("generator."))
    gen = load_generator(tensors, meta)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    want = tr.G_A.eval()(x)
    torch.testing.assert_close(translate(gen, x, autocast=False), want, atol=2e-2, rtol=0)
    assert read_metadata(model)["generator"]["storage_dtype"] == "float16"
    with pytest.raises(ModelError):
        add_generator_to_model(model, tmp_path / "run" / "state.safetensors", max_mb=1e-4)
    with pytest.raises(ModelError):
        load_generator({"generator.net.1.weight": torch.zeros(1)}, meta)


def test_landslide_difference_uses_stored_mode():
    from landslide_wsss.models.cyclegan import landslide_difference
    g = init_weights(ResnetGenerator(3, 0, 4, 1))
    meta = {"spectral": 3, "cond": 0, "ngf": 4, "n_blocks": 1, "difference": "brighter"}
    gen = load_generator(g.state_dict(), meta)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    d = landslide_difference(gen, x)
    assert d.shape == (2, 32, 32) and (d >= 0).all()
    gen.difference_mode = "l2"
    assert not np.allclose(landslide_difference(gen, x), d)


def _generator_file(tmp_path, mode=None):
    """A tiny generator in a model file, as add_generator_to_model stores it (difference mode
    `mode` in its metadata, or none recorded)."""
    tmp_path.mkdir(exist_ok=True)
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(3, 0, 4, 1)).eval()
    export = tmp_path / "g.safetensors"
    meta = generator_meta(g)
    meta.pop("difference")
    save_checkpoint(export, {f"generator.{k}": v for k, v in g.state_dict().items()},
                    {"architecture": meta["architecture"], "in_bands": 3, "version": "t", "generator": meta})
    model = tmp_path / "model.safetensors"
    add_generator_to_model(model, export, extra_meta=None if mode is None else {"difference": mode})
    return model


def test_model_file_difference_mode_reaches_difference_map(tmp_path):
    """The mode stored in the model file travels with the loaded generator to difference_map."""
    from landslide_wsss.fusion import difference_map

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    tensors, meta = load_checkpoint(_generator_file(tmp_path, "brighter"))
    gen = load_generator(tensors, meta)
    assert gen.difference_mode == "brighter"
    g = translate(gen, x, autocast=False)
    d = difference_map(x, g, mode=gen.difference_mode)
    np.testing.assert_allclose(d, difference_map(x, g, mode="brighter"))
    assert not np.allclose(d, difference_map(x, g, mode="l2"))  # the modes really differ here

    tensors, meta = load_checkpoint(_generator_file(tmp_path / "none", None))
    assert "difference" not in meta["generator"]
    assert load_generator(tensors, meta).difference_mode == "l2"  # nothing stored: the default
    assert ResnetGenerator(3, 0, 4, 1).difference_mode == "l2"
    with pytest.raises(ModelError, match="difference mode"):
        load_generator(tensors, {**meta["generator"], "difference": "l1"})


def test_weak_scorer_difference_uses_the_stored_mode(tmp_path):
    """A NAME-cyclegan scorer loaded from a model file computes its "diff" map in the file's mode."""
    from landslide_wsss.fusion import difference_map
    from landslide_wsss.models.classifier import Classifier
    from landslide_wsss.models.cyclegan import normalize_spectral
    from landslide_wsss.wsss import DEFAULT_PARAMS, classifier_metadata, load_model

    model = _generator_file(tmp_path, "brighter")
    tensors, gmeta = load_checkpoint(model)
    clf = Classifier(width=8, output_stride=16, mean=[100.0] * 3, std=[50.0] * 3).eval()
    meta = classifier_metadata(clf, tile=32, training={}, params={**DEFAULT_PARAMS, "gate": 0.0})
    meta["generator"] = gmeta["generator"]
    tensors.update({f"classifier.{k}": v for k, v in clf.state_dict().items()})
    save_checkpoint(model, tensors, meta)
    scorer = load_model(model, method="cam-cyclegan", device="cpu")
    assert scorer.networks.difference_mode == "brighter"
    tiles = np.random.default_rng(0).uniform(0, 255, (2, 3, 32, 32)).astype(np.float32)
    diff = scorer.predict_tiles(tiles, np.ones((2, 32, 32), bool))["diff"]
    spec = normalize_spectral(torch.from_numpy(tiles))
    g = translate(scorer.networks.generator, spec)
    np.testing.assert_allclose(diff, difference_map(spec, g, mode="brighter"), atol=1e-6)


def test_exported_generator_records_its_difference_mode(tmp_path):
    tr = CycleGANTrainer(tiny_cfg())
    tr.export_generator(tmp_path / "g.safetensors")
    assert read_metadata(tmp_path / "g.safetensors")["generator"]["difference"] == "l2"


# ----------------------------------------------------------------------------------------------
# training data: the tuning hold-out stays out


def _data_root(root, n_per_class=10, size=32):
    """A tiny ../shared/data layout: bijie/ (images with unique flat values, train.txt) and
    amunet/areaA_rgb.tif + areaA_mask.tif. Returns (root, value of each Bijie name)."""
    from PIL import Image

    from conftest import write_tif

    (root / "bijie" / "images").mkdir(parents=True)
    names, values = [], {}
    for lab, prefix in ((1, "ls"), (0, "nls")):
        for i in range(n_per_class):
            name = f"{prefix}_{i:04d}"
            v = 10 * len(names) + 5  # unique per image, survives the resize of a flat image
            Image.fromarray(np.full((size + 8, size + 4, 3), v, np.uint8)).save(root / "bijie" / "images" / f"{name}.png")
            names.append(name)
            values[name] = v
    (root / "bijie" / "train.txt").write_text("\n".join(names) + "\n")
    (root / "amunet").mkdir()
    rgb = np.full((3, 4 * size, 2 * size), 250, np.uint8)
    mask = np.zeros((4 * size, 2 * size), np.uint8)
    mask[:size // 2, :size // 2] = 1
    write_tif(root / "amunet" / "areaA_rgb.tif", rgb)
    write_tif(root / "amunet" / "areaA_mask.tif", mask)
    return root, values


def test_cyclegan_chips_leave_out_the_tuning_holdout(tmp_path):
    from landslide_wsss.datasets.bijie import label_from_name
    from landslide_wsss.training.cyclegan import cyclegan_chips
    from landslide_wsss.training.data import split_holdout

    root, values = _data_root(tmp_path)
    names = list(values)
    _, hold = split_holdout(names, [label_from_name(n) for n in names], seed=0)
    assert len(hold) == 2  # one image of each class
    A, B, desc = cyclegan_chips(root, size=32, seed=0)
    seen = {int(v) for v in np.unique(np.concatenate([A, B])[:, 0, 0, 0])} - {250}
    assert seen == {values[n] for i, n in enumerate(names) if i not in set(hold)}
    assert (desc["bijie_train"]["landslide"], desc["bijie_train"]["free"]) == (9, 9)
    # area A: 32 px chips, stride 16, only above the bottom 20 % strip (rows + 32 <= 102)
    assert desc["amunet_areaA"]["landslide"] + desc["amunet_areaA"]["free"] == 5 * 3
    assert len(A) == 9 + desc["amunet_areaA"]["landslide"] and len(B) == 9 + desc["amunet_areaA"]["free"]


def test_cyclegan_chips_fail_without_the_holdout_split(tmp_path, monkeypatch):
    """If the hold-out split cannot be imported the data step fails, instead of training the
    CycleGAN on the tuning hold-out."""
    import sys

    from landslide_wsss.training.cyclegan import cyclegan_chips

    root, _ = _data_root(tmp_path)
    monkeypatch.setitem(sys.modules, "landslide_wsss.training.data", None)  # import now fails
    with pytest.raises(ImportError):
        cyclegan_chips(root, size=32, seed=0)


def test_embedded_generator_loads_when_present():
    from landslide_wsss.paths import DEFAULT_MODEL as path
    if not path.is_file():
        pytest.skip("no embedded default model yet")
    tensors, meta = load_checkpoint(path)
    if "generator" not in meta:
        pytest.skip("the embedded default model has no generator")
    gen = load_generator(tensors, meta)
    assert gen.cond == 0 and gen.spectral == meta["in_bands"]  # the default model is RGB
    y = translate(gen, torch.rand(1, 3, 40, 40) * 2 - 1)
    assert y.shape == (1, 3, 40, 40) and y.abs().max() <= 1
    assert path.stat().st_size <= 25 * 2**20
