"""The peer architectures (am3f.models.peers): shapes, parameter counts equal to the public models, authors'
recipes, the batched (vmap) training engine, input conversions, registry and CLI."""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from am3f.models.peers import AUTHORS_RECIPES
from am3f.models.peers.htnet import region_mosaic
from am3f.models.registry import (
    ARCHITECTURES,
    PEER_VARIANTS,
    build_model,
    count_parameters,
    get_variant,
    model_config_from_dict,
)
from am3f.training.fit import fit, predict
from am3f.training.recipe import DEFAULT_TRAIN, TrainConfig, resolve_variant

PEERS = ["dualinception", "offapexnet", "rcn", "htnet", "htnet-small"]
FAST_PEERS = [p for p in PEERS if p != "htnet"]  # htnet has 140M parameters: only where it matters

# Parameter counts of the PUBLIC models, 3 classes, 28x28 input.
PUBLISHED_PARAMS = {
    # Dual-Inception, the authors' Keras create_inception_model() (github.com/xly135846/MEGC2019
    # dual_inception.py), counted layer by layer. Per stream, Input 28x28x3:
    #   block 1 (width 6): 4 x 1x1 3->6 (4 x 24) + 3x3 6->6 (330) + 5x5 6->6 (906)        =  1,332
    #   block 2 (width 16, 24 in): 4 x 1x1 24->16 (4 x 400) + 3x3 (2,320) + 5x5 (6,416)   = 10,336
    # two streams 23,336; Dense 2 x 64 x 7 x 7 = 6272 -> 1024: 6,423,552; Dense 1024 -> 3: 3,075.
    "dualinception": 2 * (4 * 24 + 330 + 906 + 4 * 400 + 2320 + 6416) + (6272 * 1024 + 1024) + (1024 * 3 + 3),
    # OFF-ApexNet (no authors' code; layer sizes of the Off-TANet re-implementation, whose README gives
    # 2.66M): per stream conv 5x5 1->6 (156) + conv 5x5 6->16 (2,416); FC 1568->1024, 1024->1024, 1024->3.
    "offapexnet": 2 * (156 + 2416) + (1568 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * 3 + 3),
    # RCN base: the authors' RCNs.RecNet(num_input=3, featuremaps=32, num_classes=3, num_layers=1), counted
    # by running their PyTorch code (github.com/xiazhaoqiang/ParameterFreeRCNs-MicroExpressionRec):
    # conv1 2,432 + BN 64 + ffconv 1,056 + BN 64 + rrconv 9,248 + BN 64 + Linear 800->3 2,403.
    "rcn": 15_331,
    # HTNet: the authors' Model.HTNet(image_size=28, patch_size=7, dim=256, heads=3, num_hierarchies=3,
    # block_repeats=(2, 2, 10), num_classes=3) of main_HTNet.py, counted by running their PyTorch code
    # (github.com/wangzhifengharrison/HTNet); layer by layer in docs/peers.md.
    "htnet": 139_582_982,
}
# ours: the declared reduced HTNet (dim 32), no public model; pinned so that a change is deliberate
HTNET_SMALL_PARAMS = 2_158_278


@pytest.fixture(scope="module")
def htnet_model():
    torch.manual_seed(0)
    return build_model("htnet")


def _model(name, htnet_model):
    return htnet_model if name == "htnet" else build_model(name)


# ----------------------------------------------------------------------------- shapes and counts
@pytest.mark.parametrize("name", PEERS)
def test_shapes_at_28(name, htnet_model):
    torch.manual_seed(0)
    model = _model(name, htnet_model).eval()
    with torch.no_grad():
        out = model(torch.rand(4, 3, 28, 28))
    assert out.shape == (4, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", FAST_PEERS)
def test_other_input_sizes_are_converted(name):
    model = build_model(name, image_size=64).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 3)


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS))
def test_parameter_count_equals_the_public_model(name, htnet_model):
    assert count_parameters(_model(name, htnet_model)) == PUBLISHED_PARAMS[name]
    assert ARCHITECTURES[name].params == PUBLISHED_PARAMS[name]


def test_htnet_small_is_a_declared_reduction():
    spec = ARCHITECTURES["htnet-small"]
    assert spec.reduced and spec.params is None and "REDUC" in spec.source.upper()
    assert count_parameters(build_model("htnet-small")) == HTNET_SMALL_PARAMS
    full, small = ARCHITECTURES["htnet"].config, spec.config
    assert (small.patch_size, small.heads, small.block_repeats, small.num_hierarchies) == \
        (full.patch_size, full.heads, full.block_repeats, full.num_hierarchies)
    assert small.dim < full.dim


# ----------------------------------------------------------------------------- input conversion
@pytest.mark.parametrize("name", ["dualinception", "offapexnet"])
def test_two_stream_peers_ignore_strain(name):
    """Dual-Inception and OFF-ApexNet see u and v only."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.rand(3, 3, 28, 28)
    y = x.clone()
    y[:, 2] = torch.rand(3, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), model(y))
        z = x.clone()
        z[:, 1] = torch.rand(3, 28, 28)
        assert not torch.allclose(model(x), model(z))


def test_htnet_region_mosaic_positions():
    """Four 14x14 crops (rows 2:16 x cols 4:18, 14:28 x 3:17, 3:17 x 14:28, 13:27 x 14:28), laid out
    [0 | 1] over [2 | 3], from the authors' fallback landmarks."""
    rows, cols = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    img = (rows * 100 + cols).float()[None, None]
    m = region_mosaic(img)[0, 0]
    assert m.shape == (28, 28)
    for (r0, c0), (mr, mc) in zip([(2, 4), (14, 3), (3, 14), (13, 14)], [(0, 0), (0, 14), (14, 0), (14, 14)]):
        assert m[mr, mc] == r0 * 100 + c0 and m[mr + 13, mc + 13] == (r0 + 13) * 100 + c0 + 13


def test_htnet_input_is_the_bgr_255_mosaic():
    model = build_model("htnet-small")
    x = torch.rand(2, 3, 28, 28)
    got = model.to_htnet_input(x)
    assert torch.equal(got, region_mosaic(torch.round(x.flip(1) * 255)))


@pytest.mark.real_data
def test_htnet_input_equals_the_authors_preprocessing(composite_dir):
    """On real flow PNGs: our conversion gives what main_HTNet.py builds (cv2.imread BGR, raw 0..255,
    crops flow[p0-7:p0+7, p1-7:p1+7] at the fallback landmarks clipped to [7, 21] and truncated,
    top row crops 0|1, bottom row 3|4), re-done here independently."""
    cv2 = pytest.importorskip("cv2")
    from am3f.data.dataset import load_flow_dataset

    data = load_flow_dataset(composite_dir)
    idx = np.arange(0, len(data), 37)
    landmarks = np.clip(np.array([[9.528073, 11.062551], [21.396168, 10.919773], [15.380184, 17.380562],
                                  [10.255435, 22.121233], [20.583706, 22.25584]]), 7, 21).astype(int)
    expected = []
    for i in idx:
        bgr = cv2.imread(str(composite_dir / "flows" / f"{data.sample_ids[i]} .png"))
        c = [bgr[p[0] - 7:p[0] + 7, p[1] - 7:p[1] + 7] for p in landmarks]
        expected.append(np.vstack([np.hstack([c[0], c[1]]), np.hstack([c[3], c[4]])]))
    expected = torch.tensor(np.array(expected), dtype=torch.float32).permute(0, 3, 1, 2)
    got = build_model("htnet-small").to_htnet_input(torch.from_numpy(data.x[idx]))
    assert torch.equal(got, expected)


# ----------------------------------------------------------------------------- registry and recipes
def test_registry_covers_every_architecture():
    from am3f.app.cli import build_parser

    loso = build_parser()._subparsers._group_actions[0].choices["loso"]
    model_option = next(a for a in loso._actions if "--model" in a.option_strings)
    for name in ARCHITECTURES:  # the CLI takes the registry's names (and a user's PATH.py:FACTORY)
        assert model_option.type(name) == name
    with pytest.raises(argparse.ArgumentTypeError, match="unknown model 'nope'"):
        model_option.type("nope")
    for name, spec in ARCHITECTURES.items():
        assert spec.config.arch == name
        assert spec.default_variant == spec.variants[0]
        for v in spec.variants:
            assert get_variant(v)[0].arch == name
        assert spec.input and spec.source and spec.paper


@pytest.mark.parametrize("name", PEERS)
def test_config_dict_round_trip(name):
    cfg = ARCHITECTURES[name].config
    d = json.loads(json.dumps(cfg.to_dict()))  # as config.json records it
    assert d["arch"] == name
    assert model_config_from_dict(d) == cfg
    if name != "htnet":
        assert count_parameters(build_model(d)) == count_parameters(build_model(cfg))


@pytest.mark.parametrize("name", PEERS)
def test_our_schedule_and_authors_recipe_resolve(name):
    mc, tc = resolve_variant(name)
    # our declared schedule, like ststnet, in the fold groups and memory layout its architecture declares
    # (am3f.models.registry)
    spec = ARCHITECTURES[name]
    assert mc == spec.config
    assert tc == replace(DEFAULT_TRAIN, fold_group=spec.fold_group, channels_last=spec.channels_last)
    mc, tc = resolve_variant(f"{name}-authors")
    assert mc == spec.config and tc.channels_last == spec.channels_last
    recipe = AUTHORS_RECIPES[name]
    for k, v in recipe.items():
        assert getattr(tc, k) == v
    # nothing the authors did not do: plain cross-entropy, no augmentation, no TTA, constant rate
    assert tc.tau == 0 and tc.weight_power == 0 and tc.label_smoothing == 0
    assert tc.hflip == 0 and tc.max_shift == 0 and tc.same_class_mix == 0 and not tc.tta_flip
    assert tc.schedule == "constant" and tc.ema == 0 and tc.n_models == 1 and not tc.drop_last
    assert TrainConfig.from_dict(json.loads(json.dumps(tc.to_dict()))) == tc
    assert resolve_variant(f"{name}-authors", epochs=1)[1].epochs == 1


def test_authors_recipes_as_published():
    """The numbers of the authors' code (see each module's docstring for file and line)."""
    r = {k: (v["optimizer"], v["lr"], v["epochs"], v["batch_size"]) for k, v in AUTHORS_RECIPES.items()}
    assert r["dualinception"] == ("adam", 1e-4, 40, 3)
    assert r["offapexnet"] == ("adam", 1e-4, 3000, 64)
    assert r["rcn"] == ("sgd", 5e-4, 20, 64) and AUTHORS_RECIPES["rcn"]["nesterov"] is False
    assert r["htnet"] == ("adam", 5e-5, 800, 256)
    assert r["ststnet"] == ("adam", 5e-5, 800, 256)  # main.py (the code of the published weights)
    assert set(PEER_VARIANTS) == {n for p in (*PEERS, "ststnet") for n in (p, f"{p}-authors")}


def test_train_config_records_every_field():
    """config.json holds the whole recipe, the fold grouping of the batched trainer included."""
    d = DEFAULT_TRAIN.to_dict()
    assert {"schedule", "nesterov", "drop_last", "fold_group", "optimizer", "lr", "epochs"} <= set(d)
    assert TrainConfig.from_dict(d) == DEFAULT_TRAIN
    from dataclasses import replace

    assert TrainConfig.from_dict(replace(DEFAULT_TRAIN, schedule="constant").to_dict()).schedule == "constant"


def test_plain_recipe_fits(tmp_path):
    """Adam / SGD without Nesterov, constant rate, ragged last batch kept (fake data)."""
    from am3f.data.dataset import load_flow_dataset

    from conftest import write_fake_composite

    data = load_flow_dataset(write_fake_composite(tmp_path / "d", {"s1": [0, 1, 2, 0, 1], "s2": [2, 2, 0, 1]}))
    for variant in ("rcn-authors", "offapexnet-authors"):
        mc, tc = resolve_variant(variant, epochs=2, batch_size=4)  # 9 samples: batches of 4, 4, 1
        model, ep = fit(data, mc, tc, seed=0, eval_x=data.x[:2])
        assert ep.shape == (2, 2, 3) and predict(model, data.x[:3]).shape == (3, 3)


# ----------------------------------------------------------------------------- batched engine (vmap)
def _vmap_check(name: str, n_models: int = 2, batch: int = 4) -> None:
    from torch.func import functional_call, stack_module_state, vmap

    torch.manual_seed(0)
    models = [build_model(name) for _ in range(n_models)]
    base = copy.deepcopy(models[0]).to("meta")
    params, buffers = stack_module_state(models)
    assert all(p.requires_grad for p in params.values())

    def call(p, b, xb):
        return functional_call(base, (p, b), (xb,))

    x = torch.rand(n_models, batch, 3, 28, 28)
    y = torch.randint(0, 3, (n_models, batch))
    if name == "rcn":  # the peer with BatchNorm (updated twice per forward by its recurrence)
        assert any(k.endswith("running_mean") for k in buffers)
    before = {k: v.clone() for k, v in buffers.items()}
    base.train()
    out = vmap(call, randomness="different")(params, buffers, x)
    assert out.shape == (n_models, batch, 3)
    loss = F.cross_entropy(out.reshape(-1, 3), y.reshape(-1))
    loss.backward()
    for k, p in params.items():
        assert p.grad is not None and p.grad.shape == p.shape and torch.isfinite(p.grad).all(), k
    assert any(p.grad.abs().sum() > 0 for p in params.values())
    for k, v in buffers.items():  # BatchNorm running statistics were updated, per model
        if k.endswith("running_mean"):
            assert not torch.equal(v, before[k]), k
            assert not torch.equal(v[0], v[1]), k
    base.eval()
    with torch.no_grad():
        got = vmap(call)(params, buffers, x)
        state = {**{k: v.detach() for k, v in params.items()}, **buffers}
        for i, m in enumerate(models):
            m.load_state_dict({k: v[i] for k, v in state.items()})
            assert torch.allclose(got[i], m.eval()(x[i]), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", FAST_PEERS)
def test_vmap_batched_engine(name):
    _vmap_check(name)


@pytest.mark.slow
def test_vmap_batched_engine_htnet_published():
    _vmap_check("htnet")


# ----------------------------------------------------------------------------- Grad-CAM targets
@pytest.mark.parametrize("name", FAST_PEERS)
def test_cam_target_layers(name):
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import GradCAM

    model = build_model(name).eval()
    layers = model.cam_target_layers()
    assert len(layers) == (2 if name in ("dualinception", "offapexnet") else 1)
    for layer in layers:
        with GradCAM(model=model, target_layers=[layer]) as cam:
            maps = cam(input_tensor=torch.rand(2, 3, 28, 28), targets=None)
        assert maps.shape == (2, 28, 28)


# ----------------------------------------------------------------------------- CLI
def test_models_command_lists_every_architecture(capsys):
    from am3f.app.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    expected = {**PUBLISHED_PARAMS, "ststnet": 1683, "htnet-small": HTNET_SMALL_PARAMS,
                "am3f": count_parameters(build_model("full"))}
    for name in ("am3f", "ststnet", "dualinception", "offapexnet", "rcn", "htnet", "htnet-small"):
        line = next(ln for ln in out.splitlines() if ln.split() and ln.split()[0] == name)
        assert f"{expected[name]:,} params" in line, line
    assert out.count("(= published)") == 5 and "!=" not in out


def test_loso_takes_every_peer_with_its_own_variant(tmp_path, capsys):
    from am3f.app.cli import main

    from conftest import write_fake_composite

    root = write_fake_composite(tmp_path / "d", {"s1": [0, 1, 2, 0], "s2": [2, 1, 0, 1], "s3": [0, 2, 1]})
    out = tmp_path / "r"
    assert main(["loso", "--model", "rcn", "--data", str(root), "--out", str(out), "--folds", "0",
                 "--epochs", "1", "--device", "cpu"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["variant"] == "rcn" and cfg["model_config"]["arch"] == "rcn" and cfg["parameters"] == 15_331
    assert main(["loso", "--model", "rcn", "--variant", "htnet-authors", "--data", str(root),
                 "--out", str(tmp_path / "bad"), "--folds", "0", "--epochs", "1"]) == 2
    assert "variant 'htnet-authors' is of model 'htnet'" in capsys.readouterr().err


def test_peer_checkpoint_round_trip(tmp_path):
    """`am3f train` / `am3f predict` work for a peer: the checkpoint's model_config carries its arch."""
    from am3f.data.dataset import load_flow_dataset
    from am3f.protocol.checkpoint import load_checkpoint, train_final

    from conftest import write_fake_composite

    data = load_flow_dataset(write_fake_composite(tmp_path / "d", {"s1": [0, 1, 2, 0], "s2": [2, 1, 0, 1]}))
    mc, tc = resolve_variant("rcn-authors", epochs=1)
    path = train_final(data, mc, tc, tmp_path / "m.pt", seed=0, variant="rcn-authors", show_progress=False)
    model, meta = load_checkpoint(path)
    assert meta["model_config"]["arch"] == "rcn" and meta["parameters"] == 15_331
    assert "rcn" in meta["normalisation"]["applied"]
    assert predict(model, data.x[:2]).shape == (2, 3)


def _stream_by_stream(model: torch.nn.Module) -> torch.nn.Module:
    """The same STSTNet forced through its three streams one by one (a hook makes its layers observed)."""
    model.bn1.register_forward_hook(lambda m, i, o: None)
    return model


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("group", [1, 2])
def test_ststnet_streams_computed_together_equal_stream_by_stream(group, one_thread):
    # On one CPU thread (the engine's workers), STSTNet runs its three streams as one 16-channel convolution,
    # batch norm and max pool: outputs, gradients, running statistics and training under vmap must be bit
    # for bit those of stream by stream
    from am3f.data.dataset import FlowDataset
    from am3f.training.fit import fit_group

    torch.manual_seed(0)
    together = build_model("ststnet")
    by_stream = _stream_by_stream(copy.deepcopy(together))
    x, y = torch.rand(37, 3, 28, 28), torch.randint(0, 3, (37,))
    for step in range(3):
        for model in (together, by_stream):
            torch.manual_seed(step)  # the same dropout masks
            F.cross_entropy(model(x), y).backward()
        for (name, a), b in zip(together.named_parameters(), by_stream.parameters()):
            assert torch.equal(a.grad, b.grad), name
    for (name, a), b in zip(together.state_dict().items(), by_stream.state_dict().values()):
        assert torch.equal(a, b), name
    assert int(together.bn3.num_batches_tracked) == 3
    together.eval(), by_stream.eval()
    assert torch.equal(together(x), by_stream(x))

    # the engine: one model alone (group 1) and two models vmapped together (group 2)
    rng = np.random.default_rng(3)
    subjects = np.repeat([f"s{i}" for i in range(4)], 6)
    data = FlowDataset(rng.random((24, 3, 28, 28), dtype=np.float32), rng.integers(0, 3, 24), subjects,
                       np.array(["synthetic"] * 24), np.array([f"x{i}" for i in range(24)]))
    mc, tc = resolve_variant("ststnet", epochs=2, batch_size=8, channels_last=False)  # the bit-exact case: NCHW
    sets = [np.flatnonzero(data.subjects != s) for s in sorted(set(data.subjects))[:group]]
    fitted, _ = fit_group(data, sets, mc, tc, seed=1)
    import am3f.models.peers.ststnet as ststnet

    plain_forward = ststnet.STSTNet._layers_observed
    try:
        ststnet.STSTNet._layers_observed = lambda self: True
        reference, _ = fit_group(data, sets, mc, tc, seed=1)
    finally:
        ststnet.STSTNet._layers_observed = plain_forward
    for a, b in zip(fitted, reference):
        for (name, u), v in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(u, v), name


@pytest.mark.parametrize("name", [n for n, spec in ARCHITECTURES.items() if spec.channels_last])
def test_channels_last_computes_the_same_function(name):
    # the declared layout changes how the CPU kernels run, not the model: the same weights give the same
    # outputs and gradients in NCHW and channels-last memory, up to float rounding (eval mode: no dropout)
    from am3f.training.fit import memory_layout

    torch.manual_seed(0)
    nchw = build_model(name).eval()
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    assert memory_layout(nhwc) == torch.channels_last and memory_layout(nchw) == torch.contiguous_format
    x, y = torch.rand(6, 3, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2])
    out = [m(xx) for m, xx in ((nchw, x), (nhwc, x.contiguous(memory_format=torch.channels_last)))]
    torch.testing.assert_close(out[0], out[1], rtol=1e-4, atol=1e-5)
    for o in out:
        F.cross_entropy(o, y).backward()
    for (k, a), b in zip(nchw.named_parameters(), nhwc.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-5, msg=k)
