"""CIFAR-style ResNet backbones and the feature-tap contract.

Every paper reproduced by this package (CrtCl, LL4AL, LPLgrad, TOD) uses the
CIFAR variant of ResNet-18: a 3x3 convolutional stem without max-pooling,
four stages of :class:`BasicBlock` with 64/128/256/512 channels at strides
1/2/2/2, global average pooling and a linear head.

The critic of CrtCl and the loss-prediction module of LL4AL both consume the
intermediate outputs of the backbone. They are exposed by one method,
:meth:`ResNet.forward_taps`, and by the module-level :func:`forward_taps`,
which also accepts torchvision ResNets (they have the same ``layer1`` ..
``layer4`` stages).
"""

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BasicBlock", "ResNet", "resnet18", "resnet34", "forward_taps", "norm_layer", "NORMS",
           "TAP_NAMES",
           "MIN_IMAGE_SIZE"]

#: Smallest image side (pixels) the estimators accept with these backbones: the
#: three stride-2 stages bring 8x8 down to 1x1 at stage 4; on smaller images the
#: last stages compute on zero padding.
MIN_IMAGE_SIZE = 8

#: Names of the intermediate outputs returned by :func:`forward_taps`, in order.
TAP_NAMES = ("input", "stage1", "stage2", "stage3", "stage4", "logits")


#: The normalisation layers a :class:`ResNet` can use (its ``norm`` argument).
NORMS = ("batch", "layer")


def norm_layer(norm, channels):
    """The normalisation layer ``norm`` for ``channels`` channels.

    Parameters
    ----------
    norm : {"batch", "layer"}
        ``"batch"``: :class:`torch.nn.BatchNorm2d` (the papers' networks);
        ``"layer"``: :class:`torch.nn.GroupNorm` with one group, i.e. layer
        normalisation of each sample over its channels and pixels (no batch
        statistics, no running buffers; unlike group normalisation with
        many small groups, it keeps the information of the 1x1 maps that
        small images reach in the last stage).
    channels : int
        Number of channels.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        If ``norm`` is not one of :data:`NORMS`.
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1) shortcut.

    Parameters
    ----------
    in_planes : int
        Number of input channels.
    planes : int
        Number of output channels.
    stride : int, default=1
        Stride of the first convolution (and of the shortcut projection).
    norm : {"batch", "layer"}, default="batch"
        Normalisation layers (see :class:`ResNet`).
    """

    expansion = 1

    def __init__(self, in_planes, planes, stride=1, norm="batch"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm_layer(norm, planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                norm_layer(norm, planes),
            )

    def forward(self, x):
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_planes, H, W)
            Input feature maps.

        Returns
        -------
        torch.Tensor of shape (n, planes, H / stride, W / stride)
        """
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (3x3 stem, no max-pool) with a configurable width.

    Parameters
    ----------
    layers : sequence of 4 int
        Number of :class:`BasicBlock` per stage, e.g. ``(2, 2, 2, 2)`` for
        ResNet-18.
    num_classes : int, default=10
        Size of the linear head.
    in_channels : int, default=3
        Channels of the input images.
    width : int, default=64
        Channels of the first stage; the stages have ``width * (1, 2, 4, 8)``
        channels (64/128/256/512 for the papers' networks). Small widths make
        CPU training practical.
    norm : {"batch", "layer"}, default="batch"
        Normalisation layers: batch normalisation as in the papers, or layer
        normalisation (each sample normalised on its own; see
        :func:`norm_layer`), whose training does not depend on how samples
        are grouped into batches, e.g. when a distributed job splits them
        across processes.

    Attributes
    ----------
    stage_channels : tuple of int
        Channels of the four stage outputs.

    Notes
    -----
    Any input height and width works: pooling is adaptive. The stages run at
    strides 1/2/2/2, so 8x8 inputs reach stage 4 at 1x1.
    """

    def __init__(self, layers=(2, 2, 2, 2), num_classes=10, in_channels=3, width=64,
                 norm="batch"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if len(layers) != 4:
            raise ValueError(f"layers must have 4 entries (one per stage), got {len(layers)}")
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels),
                            ("width", width)):
            if not isinstance(value, (int,)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.width = width
        self.stage_channels = tuple(width * m for m in (1, 2, 4, 8))
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.norm = norm
        self.bn1 = norm_layer(norm, width)
        in_planes = width
        stages = []
        for planes, n_blocks, stride in zip(self.stage_channels, layers, (1, 2, 2, 2)):
            blocks = []
            for block_stride in [stride] + [1] * (n_blocks - 1):
                blocks.append(BasicBlock(in_planes, planes, block_stride, norm=norm))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward_taps(self, x):
        """Run the network and return every intermediate output.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)
            Input images.

        Returns
        -------
        taps : dict of str to torch.Tensor
            ``"input"`` (``x`` itself), ``"stage1"`` .. ``"stage4"`` (the outputs
            of the four stages, each ``(n, C_k, H_k, W_k)``) and ``"logits"``
            (``(n, num_classes)``), in the order of :data:`TAP_NAMES`.
        """
        out = F.relu(self.bn1(self.conv1(x)))
        s1 = self.layer1(out)
        s2 = self.layer2(s1)
        s3 = self.layer3(s2)
        s4 = self.layer4(s3)
        logits = self.fc(torch.flatten(self.avgpool(s4), 1))
        return {"input": x, "stage1": s1, "stage2": s2, "stage3": s3, "stage4": s4,
                "logits": logits}

    def forward(self, x):
        """Return the logits.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)
            Input images.

        Returns
        -------
        logits : torch.Tensor of shape (n, num_classes)
        """
        return self.forward_taps(x)["logits"]


def resnet18(num_classes=10, in_channels=3, width=64, norm="batch"):
    """CIFAR-style ResNet-18 (``BasicBlock``, stages of 2/2/2/2 blocks).

    Parameters
    ----------
    num_classes : int, default=10
        Size of the linear head.
    in_channels : int, default=3
        Channels of the input images.
    width : int, default=64
        Base channels (64 in the papers).
    norm : {"batch", "layer"}, default="batch"
        Normalisation layers (see :class:`ResNet`).

    Returns
    -------
    ResNet
    """
    return ResNet((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels, width=width,
                  norm=norm)


def resnet34(num_classes=10, in_channels=3, width=64, norm="batch"):
    """CIFAR-style ResNet-34 (``BasicBlock``, stages of 3/4/6/3 blocks).

    Parameters
    ----------
    num_classes : int, default=10
        Size of the linear head.
    in_channels : int, default=3
        Channels of the input images.
    width : int, default=64
        Base channels (64 in the papers).
    norm : {"batch", "layer"}, default="batch"
        Normalisation layers (see :class:`ResNet`).

    Returns
    -------
    ResNet
    """
    return ResNet((3, 4, 6, 3), num_classes=num_classes, in_channels=in_channels, width=width,
                  norm=norm)


def forward_taps(module, x):
    """Intermediate outputs of a ResNet: the package's feature-tap contract.

    Parameters
    ----------
    module : torch.nn.Module
        A :class:`ResNet` of this package, any module with a ``forward_taps``
        method, or a torchvision ResNet (``conv1``, ``bn1``, ``relu``,
        ``maxpool``, ``layer1`` .. ``layer4``, ``avgpool``, ``fc``).
    x : torch.Tensor of shape (n, C, H, W)
        Input images.

    Returns
    -------
    taps : dict of str to torch.Tensor
        Keys :data:`TAP_NAMES`: the input, the four stage outputs and the logits.

    Raises
    ------
    TypeError
        If ``module`` has neither ``forward_taps`` nor the torchvision layout.
    """
    if hasattr(module, "forward_taps"):
        return module.forward_taps(x)
    needed = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
              "avgpool", "fc")
    missing = [name for name in needed if not hasattr(module, name)]
    if missing:
        raise TypeError(
            f"{type(module).__name__} does not expose its intermediate outputs: it has no "
            f"'forward_taps' method and lacks the torchvision ResNet attributes {missing}"
        )
    out = module.maxpool(module.relu(module.bn1(module.conv1(x))))
    s1 = module.layer1(out)
    s2 = module.layer2(s1)
    s3 = module.layer3(s2)
    s4 = module.layer4(s3)
    logits = module.fc(torch.flatten(module.avgpool(s4), 1))
    return {"input": x, "stage1": s1, "stage2": s2, "stage3": s3, "stage4": s4,
            "logits": logits}
