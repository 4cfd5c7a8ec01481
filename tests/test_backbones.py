import pytest
import torch

from sklearn_crtcl.backbones import TAP_NAMES, ResNet, forward_taps, resnet18, resnet34
from sklearn_crtcl.heads import MultiTapHead, pool_taps, tap_dims


def n_blocks(model):
    return [len(getattr(model, f"layer{i}")) for i in range(1, 5)]


def test_resnet18_and_34_layouts():
    assert n_blocks(resnet18()) == [2, 2, 2, 2]
    assert n_blocks(resnet34()) == [3, 4, 6, 3]
    model = resnet18(num_classes=7, in_channels=1, width=8)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model.conv1.in_channels == 1
    assert model.stage_channels == (8, 16, 32, 64)
    assert model.fc.out_features == 7
    # no max-pool anywhere in the stem
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())


def test_paper_width_has_standard_channels_and_parameter_count():
    model = resnet18(num_classes=10, in_channels=3)
    assert model.stage_channels == (64, 128, 256, 512)
    n_params = sum(p.numel() for p in model.parameters())
    # the CIFAR ResNet-18 of the references has 11,173,962 parameters
    assert n_params == 11_173_962


@pytest.mark.parametrize("size", [8, 13, 28, 32])
def test_forward_taps_shapes_and_strides(size):
    torch.manual_seed(0)
    model = resnet18(num_classes=5, in_channels=2, width=4).eval()
    x = torch.randn(3, 2, size, size)
    taps = forward_taps(model, x)
    assert tuple(taps) == TAP_NAMES
    assert taps["input"] is x
    expected = size
    for i, channels in enumerate((4, 8, 16, 32)):
        if i > 0:
            expected = (expected + 1) // 2  # stride 2, padding 1
        assert taps[f"stage{i + 1}"].shape == (3, channels, expected, expected)
    assert taps["logits"].shape == (3, 5)
    assert torch.allclose(taps["logits"], model(x))


def test_forward_taps_rejects_modules_without_stages():
    with pytest.raises(TypeError, match="forward_taps"):
        forward_taps(torch.nn.Linear(3, 2), torch.zeros(1, 3))


def test_forward_taps_accepts_torchvision_layout():
    """A module with torchvision's ResNet attributes satisfies the contract."""
    class TVLike(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.bn1 = torch.nn.BatchNorm2d(4)
            self.relu = torch.nn.ReLU()
            self.maxpool = torch.nn.MaxPool2d(2)
            self.layer1 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.layer2 = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1)
            self.layer3 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.layer4 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
            self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
            self.fc = torch.nn.Linear(32, 6)

    model = TVLike().eval()
    taps = forward_taps(model, torch.randn(2, 3, 32, 32))
    assert taps["stage1"].shape == (2, 4, 16, 16)
    assert taps["stage4"].shape == (2, 32, 2, 2)
    assert taps["logits"].shape == (2, 6)
    assert tap_dims(model, ["input", "stage2", "stage4", "proba"],
                    sample_shape=(3, 32, 32)) == [3, 8, 32, 6]
    assert model.training is False


def test_torchvision_resnet_when_importable():
    tv = pytest.importorskip("torchvision")
    model = tv.models.resnet18(num_classes=4).eval()
    taps = forward_taps(model, torch.randn(2, 3, 32, 32))
    assert taps["stage4"].shape[1] == 512 and taps["logits"].shape == (2, 4)


def test_invalid_backbone_arguments():
    with pytest.raises(ValueError, match="width"):
        resnet18(width=0)
    with pytest.raises(ValueError, match="4 entries"):
        ResNet(layers=(2, 2, 2))


def test_multi_tap_head_pools_projects_and_concatenates():
    torch.manual_seed(0)
    head = MultiTapHead([3, 5], hidden=4)
    a, b = torch.randn(6, 3, 8, 8), torch.randn(6, 5)
    out = head([a, b])
    assert out.shape == (6,)
    pa, pb = pool_taps([a, b])
    assert torch.allclose(pa, a.mean(dim=(2, 3))) and pb is b
    expected = head.out(torch.cat([torch.relu(head.projections[0](pa)),
                                   torch.relu(head.projections[1](pb))], dim=1)).squeeze(1)
    assert torch.allclose(out, expected)
    with pytest.raises(ValueError, match="expected 2 tapped tensors"):
        head([a])


def test_tap_dims_from_attributes():
    model = resnet18(num_classes=10, in_channels=1, width=8)
    assert tap_dims(model, ["input", "stage1", "stage2", "stage3", "stage4", "proba"]) == \
        [1, 8, 16, 32, 64, 10]
    with pytest.raises(ValueError, match="unknown taps"):
        tap_dims(model, ["stage5"])
