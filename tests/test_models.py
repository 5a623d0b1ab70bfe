"""Models: registry, parameter counts pinned, torchvision parity, every variant trains."""

from __future__ import annotations

import itertools

import pytest
import torch
import torchvision

from squeezelab.models import (
    count_macs,
    count_params,
    fire_specs,
    get_model,
    list_models,
    model_info,
)

from .conftest import last_json, run_cli

# Pinned complexity (params at 1000 classes; params and MACs at 64x64 with 10 classes).
EXPECTED = {
    "squeezenet1_0": {"params_1000": 1_248_424, "params_10": 740_554, "macs_64": 49_409_056},
    "squeezenet1_1": {"params_1000": 1_235_496, "params_10": 727_626, "macs_64": 17_022_656},
    "alexnet": {"params_1000": 61_100_840, "params_10": 57_044_810, "macs_64": 94_089_920},
}
MACS_224 = {"squeezenet1_0": 818_924_576, "squeezenet1_1": 349_151_936, "alexnet": 714_188_480}


def test_registry_lists_models_with_what_the_house_shows_of_them() -> None:
    from squeezelab.models import model_info, variant_of

    assert {"alexnet", "squeezenet1_0", "squeezenet1_1"} <= set(list_models())
    assert list_models() == sorted(list_models())
    assert model_info("squeezenet1_0").label == "SqueezeNet 1.0"
    assert variant_of("squeezenet1_0", {"batch_norm": True}) == "squeezenet1_0+bn"
    assert variant_of("alexnet", {"batch_norm": True}) == "alexnet"  # not an AlexNet option
    assert model_info("resnet50").label == "resnet50"  # unknown: shown as named


class _TinyResNet(torch.nn.Module):
    """A two-block residual network: a family the house has never seen."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.block = torch.nn.Sequential(
            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()
        )
        self.head = torch.nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = x + self.block(x)
        return self.head(x.mean((2, 3)))


@pytest.fixture
def tiny_family():
    """A family registered as a user's module would (and removed again afterwards)."""
    from squeezelab.models import register_model, registry

    @register_model(label="Tiny ResNet", color="tab:purple")
    def tinyresnet(num_classes: int = 1000) -> torch.nn.Module:
        return _TinyResNet(num_classes)

    yield "tinyresnet"
    del registry._MODELS["tinyresnet"]


def test_a_new_family_is_one_registration(tiny_family: str, tmp_path) -> None:
    """Registering a builder is all a family needs: configs, training and the report's
    labels read it from the registry."""
    from squeezelab.analysis.tables import label
    from squeezelab.training import from_dict, train

    assert tiny_family in list_models()
    cfg = from_dict({"model": tiny_family, "data": "synthetic:200", "image_size": 16,
                     "epochs": 1, "batch_size": 32})  # fmt: skip
    outcome = train(cfg, tmp_path / "run", verbose=False)
    assert outcome.result.test_acc is not None
    assert label(tiny_family) == "Tiny ResNet"
    # the general advice when it stalls: no family's own hint is borrowed
    assert model_info(tiny_family).stall_hint({}) is None
    assert "plain SqueezeNet" in (model_info("squeezenet1_0").stall_hint({}) or "")
    assert model_info("squeezenet1_0").stall_hint({"batch_norm": True}) is None
    with pytest.raises(ValueError, match="unknown option 'batch_norm'"):
        from_dict({"model": tiny_family, "batch_norm": True})


def test_unknown_model_and_option_are_named() -> None:
    with pytest.raises(ValueError, match="available models: alexnet, squeezenet1_0"):
        get_model("squeezenet2")
    with pytest.raises(ValueError, match=r"unknown option.*batch_norm.*valid options: dropout"):
        get_model("alexnet", batch_norm=True)
    with pytest.raises(ValueError, match="bypass must be one of"):
        get_model("squeezenet1_0", bypass="sideways")
    with pytest.raises(ValueError, match="pct3x3"):
        get_model("squeezenet1_0", pct3x3=1.5)


def test_duplicate_registration_rejected() -> None:
    from squeezelab.models import register_model

    def alexnet(num_classes: int = 1000) -> torch.nn.Module:
        return torch.nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        register_model(alexnet)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_counts_and_macs(name: str) -> None:
    assert count_params(get_model(name)) == EXPECTED[name]["params_1000"]
    small = get_model(name, num_classes=10)
    assert count_params(small) == EXPECTED[name]["params_10"]
    assert count_macs(small, 64) == EXPECTED[name]["macs_64"]
    assert count_macs(get_model(name), 224) == MACS_224[name]


def test_batch_norm_adds_two_parameters_per_squeeze_channel() -> None:
    plain = count_params(get_model("squeezenet1_0", num_classes=10))
    bn = get_model("squeezenet1_0", num_classes=10, batch_norm=True)
    squeeze_channels = sum(s.squeeze for s in fire_specs())
    assert squeeze_channels == 320
    assert count_params(bn) - plain == 2 * squeeze_channels == 640


def test_default_metaparameters_reproduce_squeezenet_1_0() -> None:
    sizes = [(s.squeeze, s.expand1x1, s.expand3x3) for s in fire_specs()]
    assert sizes == [
        (16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128),
        (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256),
    ]  # fmt: skip
    sr = fire_specs(squeeze_ratio=0.75)
    assert sr[0].squeeze == 96 and sr[-1].squeeze == 384
    pct = fire_specs(pct3x3=0.25)
    assert (pct[0].expand1x1, pct[0].expand3x3) == (96, 32)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torchvision_parity(name: str) -> None:
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)().eval()
    ours = get_model(name).eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_initialization_matches_torchvision_scheme() -> None:
    torch.manual_seed(0)
    model = get_model("squeezenet1_0")
    final = model.classifier[1]
    assert abs(final.weight.std().item() - 0.01) < 0.001
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            assert torch.count_nonzero(m.bias) == 0


def test_fire_delta_changes_depth_and_classifier_width() -> None:
    for delta, n in [(-2, 6), (-1, 7), (1, 9), (2, 10)]:
        m = get_model("squeezenet1_0", num_classes=10, fire_delta=delta)
        fires = [x for x in m.features if type(x).__name__ == "Fire"]
        assert len(fires) == n
        assert m.classifier[1].in_channels == fires[-1].outplanes


def test_bypass_kinds() -> None:
    simple = get_model("squeezenet1_0", bypass="simple")
    complex_ = get_model("squeezenet1_0", bypass="complex")
    fires = [x for x in simple.features if type(x).__name__ == "Fire"]
    # Identity bypass around fire3, 5, 7, 9 (indices 1, 3, 5, 7): no new parameters.
    assert [type(f.bypass).__name__ for f in fires] == ["NoneType", "Identity"] * 4
    assert count_params(simple) == 1_248_424
    convs = [f for f in complex_.features if type(f).__name__ == "Fire"]
    assert [type(f.bypass).__name__ for f in convs] == ["Conv2d", "Identity"] * 4
    extra = sum(f.inplanes * f.outplanes + f.outplanes for f in convs[::2])
    assert count_params(complex_) == 1_248_424 + extra


VARIANTS = [
    {"batch_norm": True},
    {"fire_delta": -2},
    {"fire_delta": -1},
    {"fire_delta": 1},
    {"fire_delta": 2},
    {"bypass": "simple"},
    {"bypass": "complex"},
    {"squeeze_ratio": 0.25},
    {"pct3x3": 0.25},
    {"base_e": 64, "incr_e": 64, "freq": 1},
    {"batch_norm": True, "fire_delta": 1, "bypass": "complex", "squeeze_ratio": 0.5},
    {"batch_norm": True, "fire_delta": -2, "bypass": "simple", "pct3x3": 0.75},
]
CASES = [("alexnet", {}, 64)] + [
    (name, opts, size)
    for name, opts, size in itertools.product(
        ["squeezenet1_0", "squeezenet1_1"], [{}, *VARIANTS], [32, 64]
    )
]


@pytest.mark.parametrize(("name", "options", "size"), CASES)
def test_forward_backward_every_variant(name: str, options: dict, size: int) -> None:
    torch.manual_seed(0)
    model = get_model(name, num_classes=10, **options)
    x = torch.randn(4, 3, size, size)
    out = model(x)
    assert out.shape == (4, 10)
    assert torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.arange(4)).backward()
    nonzero = 0
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        nonzero += bool(p.grad.abs().sum() > 0)
    # The final ReLU can silence a few units at init, never whole networks' worth.
    assert nonzero >= 0.9 * len(list(model.parameters()))


def test_info_json_through_console_script() -> None:
    proc = run_cli("info", "squeezenet1_0", "--batch-norm", "--num-classes", "10",
                   "--image-size", "64", "--json")  # fmt: skip
    assert last_json(proc.stdout) == {"params": 741_194, "size_mb": 2.964776, "macs": 49_409_056}
    listed = run_cli("info", "--list").stdout.split()
    # the shipped families, in order; a family registered elsewhere joins the list
    assert listed == sorted(listed) and {"alexnet", "squeezenet1_0", "squeezenet1_1"} <= set(listed)
    table = run_cli("info", "alexnet", "--num-classes", "10", "--image-size", "64").stdout
    assert "57,044,810" in table


def test_info_errors_are_clear() -> None:
    bad = run_cli("info", "squeezenet9", check=False)
    assert bad.returncode == 2 and "available models" in bad.stderr
    small = run_cli("info", "alexnet", "--image-size", "32", check=False)
    assert small.returncode == 2 and "cannot take 32x32" in small.stderr
    opt = run_cli("info", "alexnet", "--batch-norm", check=False)
    assert opt.returncode == 2 and "batch_norm" in opt.stderr


def test_stem_stride_option_reaches_model_config_and_command_line(tmp_path) -> None:
    from squeezelab.training.config import RunConfig, from_dict

    wide = get_model("squeezenet1_0", num_classes=10, stem_stride=1)
    base = get_model("squeezenet1_0", num_classes=10)
    assert count_params(wide) == count_params(base)  # same weights: torchvision's still load
    wide.load_state_dict(base.state_dict())
    assert count_macs(wide, 64) > 3 * count_macs(base, 64)
    cfg = from_dict({"stem_stride": 1})
    assert cfg.model_options() == {"stem_stride": 1} and cfg.key() != RunConfig().key()
    assert from_dict({"stem_stride": 2}).key() == RunConfig().key()  # the default hashes as before
    with pytest.raises(ValueError, match="unknown option 'stem_stride'"):
        from_dict({"model": "alexnet", "stem_stride": 1})
    with pytest.raises(ValueError, match="stem_stride must be <= 4"):
        from_dict({"stem_stride": 5})
    info = last_json(run_cli("info", "squeezenet1_0", "--stem-stride", "1", "--image-size", "64",
                             "--num-classes", "10", "--json").stdout)  # fmt: skip
    assert info["macs"] == count_macs(wide, 64)


def test_alexnet_1x1_pool_computes_the_6x6_layer_at_64x64_but_steps_36_times_shorter() -> None:
    """At 64x64 AlexNet's feature map is 1x1: torchvision's 6x6 pool feeds fc6 36 copies of
    each feature. With fc6's weights summed over the copies, the 1x1 head computes the same
    function; one SGD step moves the 6x6 head's summed weights 36 times as far."""
    from squeezelab.training.config import RunConfig, from_dict

    torch.manual_seed(0)
    wide = get_model("alexnet", num_classes=10).eval()  # eval: dropout off, steps comparable
    narrow = get_model("alexnet", num_classes=10, avgpool="1x1").eval()
    assert tuple(narrow.classifier[1].weight.shape) == (4096, 256)
    assert count_params(wide) - count_params(narrow) == 4096 * 256 * 35
    state = wide.state_dict()
    state["classifier.1.weight"] = state["classifier.1.weight"].view(4096, 256, 36).sum(-1)
    narrow.load_state_dict(state)
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    assert torch.allclose(wide(x), narrow(x), atol=1e-5)

    lr = 0.01  # SGD's step is -lr * grad; fresh models hold no gradient before this pass
    for model in (wide, narrow):
        torch.nn.functional.cross_entropy(model(x), y).backward()
    step_wide = -lr * wide.classifier[1].weight.grad.view(4096, 256, 36).sum(-1)
    step_narrow = -lr * narrow.classifier[1].weight.grad
    assert step_narrow.abs().max() > 0
    assert torch.allclose(step_wide, 36 * step_narrow, rtol=1e-4, atol=1e-9)

    cfg = from_dict({"model": "alexnet", "avgpool": "1x1"})
    assert cfg.model_options() == {"avgpool": "1x1"} and cfg.key() != RunConfig().key()
    default = {"model": "alexnet"}
    assert from_dict({**default, "avgpool": "6x6"}).key() == from_dict(default).key()
    with pytest.raises(ValueError, match="unknown option 'avgpool'"):
        from_dict({"model": "squeezenet1_0", "avgpool": "1x1"})
    with pytest.raises(ValueError, match="avgpool"):
        from_dict({"model": "alexnet", "avgpool": "2x2"})
