"""The straightforward references the benchmarks compare against.

``ReferenceGAN``: G, S and D built from MONAI's building blocks (``monai.networks.blocks.Convolution``:
conv -> norm -> activation) with exactly advnorm's architecture (double-conv U-Nets with
max-pool down and nearest upsample + concatenation up; a residual GroupNorm
discriminator), run the way one writes it first: float32, default memory format, PyTorch's
stock ``nn.Conv3d`` (oneDNN's own weight gradient), one ``torch.optim`` optimizer per net
with its default (per-parameter loop) implementation, each stepped on its own, and D
called separately on the real and the generated batch. Its parameters come in the same
order as advnorm's, so :meth:`ReferenceGAN.load_from` copies advnorm's weights and
both sides can be checked to compute the same losses.

``monai_class_nets``: MONAI's own ``UNet`` and ``ResNet`` classes at the same widths, a
library baseline; they are *different* (much cheaper) networks, so they are reported
with their own FLOP count, not as a like-for-like reference.

``MonaiTutorialSegmentation``: the whole segmentation training loop a MONAI user writes from the
tutorials (``UNet``, ``DiceCELoss``, ``CacheDataset`` + ``RandCropByLabelClassesd`` + ``DataLoader``,
Adam, ``sliding_window_inference``), the reference of the time-to-accuracy benchmark.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import ResNet, UNet
from torch import nn

from advnorm.config import SCALE_TOP
from advnorm.labels import CLASS_NAMES
from advnorm.models.unet import output_transform
from advnorm.training.losses import discriminator_loss, generator_adversarial_loss, segmentation_loss

LEAKY = ("leakyrelu", {"negative_slope": 0.2, "inplace": True})


def _cbr(cin: int, cout: int, stride: int = 1, k: int = 3) -> Convolution:
    return Convolution(
        3, cin, cout, strides=stride, kernel_size=k, act=("relu", {"inplace": True}), norm="batch", bias=False
    )


class RefUNet(nn.Module):
    def __init__(self, cin: int, cout: int, widths: tuple[int, ...], output: str = "logits", top: float = 1.0) -> None:
        super().__init__()
        self.output, self.top = output, top
        self.down = nn.ModuleList()
        ch = cin
        for w in widths:
            self.down.append(nn.Sequential(_cbr(ch, w), _cbr(w, w)))
            ch = w
        self.up = nn.ModuleList(
            nn.Sequential(_cbr(widths[i] + widths[i + 1], widths[i]), _cbr(widths[i], widths[i]))
            for i in reversed(range(len(widths) - 1))
        )
        self.head = Convolution(3, widths[0], cout, kernel_size=1, conv_only=True, bias=True)
        self.pool = nn.MaxPool3d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in, skips = x, []
        for i, block in enumerate(self.down):
            x = block(self.pool(x) if i else x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            x = block(torch.cat([skips.pop(), self.upsample(x)], dim=1))
        return output_transform(self.head(x), x_in, self.output, self.top)


class RefResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        norm = ("group", {"num_groups": min(8, cout)})
        self.body = nn.Sequential(
            Convolution(3, cin, cout, strides=stride, kernel_size=3, act=LEAKY, norm=norm, bias=False),
            Convolution(3, cout, cout, kernel_size=3, act=None, norm=norm, bias=False),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else Convolution(3, cin, cout, strides=stride, kernel_size=1, act=None, norm=norm, bias=False)
        )
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class RefDiscriminator(nn.Module):
    def __init__(self, n_domains: int, widths: tuple[int, ...], blocks: int) -> None:
        super().__init__()
        self.stem = Convolution(
            3, 1, widths[0], kernel_size=3, act=LEAKY, norm=("group", {"num_groups": min(8, widths[0])}), bias=False
        )
        stages, ch = [], widths[0]
        for w in widths:
            for b in range(blocks):
                stages.append(RefResBlock(ch, w, 2 if b == 0 else 1))
                ch = w
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(ch, n_domains + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3, 4)))


def _copy_state(dst: nn.Module, src: nn.Module) -> None:
    a, b = list(dst.state_dict().values()), list(src.state_dict().values())
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        raise ValueError("reference and advnorm networks differ in structure")
    with torch.no_grad():
        for x, y in zip(a, b, strict=True):
            x.copy_(y)


class ReferenceGAN:
    """G -> S with D, one adversarial step written the straightforward way."""

    def __init__(self, cfg, n_domains: int, dice_weights: torch.Tensor) -> None:
        m = cfg.model
        self.G = RefUNet(1, 1, m.generator_widths, output=m.generator_output, top=SCALE_TOP)
        self.S = RefUNet(1, len(CLASS_NAMES), m.segmenter_widths)
        self.D = RefDiscriminator(n_domains, m.discriminator_widths, m.discriminator_blocks)
        self.dice_weights = dice_weights.float()
        self.loss_cfg = cfg.loss
        self.make_optimizers(cfg.optim)
        for net in (self.G, self.S, self.D):
            net.train()

    def make_optimizers(self, o) -> None:
        """A separate optimizer per net, with PyTorch's default implementation."""

        def opt(net: nn.Module, lr: float) -> torch.optim.Optimizer:
            if o.optimizer == "sgd":
                return torch.optim.SGD(net.parameters(), lr=lr, momentum=o.momentum, weight_decay=o.weight_decay)
            return torch.optim.Adam(net.parameters(), lr=lr, weight_decay=o.weight_decay)

        self.opt_G, self.opt_S, self.opt_D = (
            opt(self.G, o.lr_generator),
            opt(self.S, o.lr_segmenter),
            opt(self.D, o.lr_discriminator),
        )

    def load_from(self, G: nn.Module, S: nn.Module, D: nn.Module) -> None:
        _copy_state(self.G, G)
        _copy_state(self.S, S)
        _copy_state(self.D, D)

    def step(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        for p in self.D.parameters():
            p.requires_grad_(False)
        self.opt_G.zero_grad()
        self.opt_S.zero_grad()
        x_hat = self.G(x) * mask
        logits = self.S(x_hat)
        lc = self.loss_cfg
        loss_seg = segmentation_loss(torch.softmax(logits, dim=1), y, self.dice_weights, lc.dice_epsilon, lc.dice_form)
        loss_adv = generator_adversarial_loss(self.D(x_hat), lc.adv_form)
        (loss_seg + lc.adv_lambda * loss_adv).backward()
        self.opt_G.step()
        self.opt_S.step()
        for p in self.D.parameters():
            p.requires_grad_(True)
        self.opt_D.zero_grad()
        loss_dis = discriminator_loss(self.D(x), z, self.D(x_hat.detach()))
        loss_dis.backward()
        self.opt_D.step()
        return {"loss_seg": loss_seg.detach(), "loss_adv": loss_adv.detach(), "loss_dis": loss_dis.detach()}


class MonaiClassGAN(ReferenceGAN):
    """The same step with MONAI's ``UNet`` (num_res_units=2, batch norm) and ``ResNet`` classes at the same widths."""

    def __init__(self, cfg, n_domains: int, dice_weights: torch.Tensor) -> None:
        super().__init__(cfg, n_domains, dice_weights)
        m = cfg.model

        def unet(cout: int, widths: tuple[int, ...]) -> nn.Module:
            return UNet(3, 1, cout, channels=widths, strides=(2,) * (len(widths) - 1), num_res_units=2, norm="batch")

        class Sig(nn.Module):
            def __init__(self, net: nn.Module) -> None:
                super().__init__()
                self.net = net

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.sigmoid(self.net(x))

        self.G = Sig(unet(1, m.generator_widths))
        self.S = unet(len(CLASS_NAMES), m.segmenter_widths)
        self.D = ResNet(
            "basic",
            [m.discriminator_blocks] * len(m.discriminator_widths),
            list(m.discriminator_widths),
            spatial_dims=3,
            n_input_channels=1,
            conv1_t_size=3,
            conv1_t_stride=2,
            no_max_pool=True,
            num_classes=n_domains + 1,
            act=LEAKY,
            norm=("group", {"num_groups": min(8, *m.discriminator_widths)}),
        )
        self.make_optimizers(cfg.optim)
        for net in (self.G, self.S, self.D):
            net.train()


class MonaiTutorialSegmentation:
    """The segmentation loop a MONAI user writes from the tutorials: the time-to-accuracy reference.

    ``monai.networks.nets.UNet`` (widths 8-16-32-64, strides 2, two residual units, batch norm, so its eval-mode
    output does not depend on the window and one window can hold the whole volume), ``DiceCELoss`` (softmax,
    one-hot labels), Adam at 1e-3. Data: a ``CacheDataset`` holding each training volume z-scored inside the brain
    (``NormalizeIntensityd(nonzero=True)``) with its voxel indices per class (``ClassesToIndicesd``, cached, as the
    fast-training tutorial does), then ``RandCropByLabelClassesd`` drawing 32^3 patches centred on CSF, GM and WM
    with equal odds, 8 per volume, 2 volumes per ``DataLoader`` batch: 16 patches per step. No augmentation
    (advnorm's ``single`` and ``harmonized`` have none either). Inference: ``sliding_window_inference`` with one
    window the size of the whole volume (rounded up to the U-Net's total stride).
    """

    def __init__(
        self,
        volumes: list[tuple[np.ndarray, np.ndarray]],
        *,
        channels: tuple[int, ...] = (8, 16, 32, 64),
        patch: int = 32,
        volumes_per_batch: int = 2,
        patches_per_volume: int = 8,
        lr: float = 1e-3,
        n_classes: int = len(CLASS_NAMES),
        seed: int = 0,
    ) -> None:
        from monai.data import CacheDataset, DataLoader
        from monai.losses import DiceCELoss
        from monai.networks.nets import UNet
        from monai.transforms import ClassesToIndicesd, Compose, NormalizeIntensityd, RandCropByLabelClassesd
        from monai.utils import set_determinism

        set_determinism(seed=seed)
        items = [{"image": img[None].astype(np.float32), "label": lab[None].astype(np.uint8)} for img, lab in volumes]
        transform = Compose(
            [
                NormalizeIntensityd(keys="image", nonzero=True),
                ClassesToIndicesd(keys="label", num_classes=n_classes),
                RandCropByLabelClassesd(
                    keys=["image", "label"],
                    label_key="label",
                    spatial_size=(patch,) * 3,
                    ratios=[0] + [1] * (n_classes - 1),
                    num_classes=n_classes,
                    num_samples=patches_per_volume,
                    indices_key="label_cls_indices",
                ),
            ]
        )
        self.dataset = CacheDataset(items, transform=transform, cache_rate=1.0, progress=False)
        volumes_per_batch = min(volumes_per_batch, len(items))  # drop_last would otherwise leave no batch at all
        self.loader = DataLoader(self.dataset, batch_size=volumes_per_batch, shuffle=True, drop_last=True)
        self.model = UNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=n_classes,
            channels=channels,
            strides=(2,) * (len(channels) - 1),
            num_res_units=2,
            norm="batch",
        )
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.stride = 2 ** (len(channels) - 1)
        self.batch_patches = volumes_per_batch * patches_per_volume
        self.batches = self._forever()

    def _forever(self) -> Iterator[dict]:
        while True:  # epoch after epoch: the DataLoader reshuffles the volumes each time
            yield from self.loader

    def step(self) -> int:
        """One optimizer step on the next batch; returns the patches it used."""
        batch = next(self.batches)
        x, y = batch["image"], batch["label"]
        self.model.train()
        self.optimizer.zero_grad()
        loss = self.loss(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return len(x)

    @torch.no_grad()
    def segment(self, image: np.ndarray) -> np.ndarray:
        """Labels of a whole working-grid volume, z-scored as in training, in one eval-mode window."""
        from monai.inferers import sliding_window_inference
        from monai.transforms import NormalizeIntensity

        x = NormalizeIntensity(nonzero=True)(torch.from_numpy(image[None].astype(np.float32)))
        roi = tuple(-(-s // self.stride) * self.stride for s in image.shape)
        self.model.eval()
        try:
            logits = sliding_window_inference(torch.as_tensor(x)[None], roi, 1, self.model)
        finally:
            self.model.train()
        assert isinstance(logits, torch.Tensor)
        return logits[0].argmax(0).numpy().astype(np.uint8)


__all__ = ["ReferenceGAN", "MonaiClassGAN", "RefUNet", "RefDiscriminator", "MonaiTutorialSegmentation"]
