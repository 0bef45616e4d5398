"""D: a 3-D residual CNN classifying a patch into K source domains or a (K+1)-th "generated" class.

With widths 64-128-256-512 and two blocks per stage it is a 3-D ResNet-18 with
GroupNorm, the authors' discriminator; the quick profile uses a slim version.
GroupNorm suits D: it is never applied to whole volumes, and its statistics are per
sample, so the real and generated patches the trainer concatenates into one pass do
not see each other's statistics.
"""

from __future__ import annotations

import torch
from torch import nn

from advnorm.models.conv3d import Conv3d


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResidualBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            Conv3d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            _norm(out_ch),
            nn.LeakyReLU(0.2, inplace=True),
            Conv3d(out_ch, out_ch, 3, padding=1, bias=False),
            _norm(out_ch),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and in_ch == out_ch
            else nn.Sequential(Conv3d(in_ch, out_ch, 1, stride=stride, bias=False), _norm(out_ch))
        )
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class DomainDiscriminator(nn.Module):
    """Logits over K + 1 classes (the paper's: indices 0..K-1 the source domains, K "generated"), or over the K
    domains alone (``generated_class=False``, a domain classifier).

    ``stem_norm="group"`` is the paper's ResNet stem. Its GroupNorm right after a bias-free convolution divides
    out a patch's intensity scale (D(x) and D(0.4 x) differ by ~1e-4), the very thing a normalizer changes;
    ``"none"`` keeps it (a biased convolution, no normalization in the stem).
    """

    def __init__(
        self,
        n_domains: int,
        widths: tuple[int, ...],
        blocks_per_stage: int = 1,
        in_channels: int = 1,
        *,
        generated_class: bool = True,
        stem_norm: str = "group",
    ) -> None:
        super().__init__()
        self.n_domains = n_domains
        if stem_norm == "group":
            stem: list[nn.Module] = [Conv3d(in_channels, widths[0], 3, padding=1, bias=False), _norm(widths[0])]
        elif stem_norm == "none":
            stem = [Conv3d(in_channels, widths[0], 3, padding=1, bias=True)]
        else:
            raise ValueError(f"unknown stem_norm {stem_norm!r}")
        self.stem = nn.Sequential(*stem, nn.LeakyReLU(0.2, inplace=True))
        stages, ch = [], widths[0]
        for w in widths:
            for b in range(blocks_per_stage):
                stages.append(ResidualBlock(ch, w, stride=2 if b == 0 else 1))
                ch = w
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(ch, n_domains + 1 if generated_class else n_domains)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask`` is unused: the patch D sees the whole patch (the same call as the histogram D)."""
        x = self.stages(self.stem(x))
        return self.head(x.mean(dim=(2, 3, 4)))
