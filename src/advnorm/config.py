"""Typed, frozen settings and the two profiles: ``quick`` (2 CPU cores, minutes) and ``paper`` (the authors' sizes).

A configuration is a tree of frozen dataclasses; :func:`ingredients` says what its method is made of, and
:func:`advnorm.config_checks.validate` checks its ranges. Reading one (a profile, a user's JSON file,
command-line overrides) is :mod:`advnorm.config_file`'s job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from advnorm.methods import METHOD_SPECS, Method

SCALE_TOP = 1.5
"""Raw inputs are rescaled to [0, SCALE_TOP] (``data.intensity``): the range of G's input and of its output."""


def total_stride(widths: tuple[int, ...]) -> int:
    """The down-sampling factor of a U-Net with these level widths: inputs must be divisible by it."""
    return 2 ** (len(widths) - 1)


@dataclass(frozen=True)
class ModelConfig:
    """Widths per U-Net level (G and S) and per discriminator stage (D)."""

    generator_widths: tuple[int, ...] = (8, 16, 32)
    """Channels of G's U-Net per level (one level per width; the authors': 64-128-256-512)."""
    segmenter_widths: tuple[int, ...] = (8, 16, 32, 64)
    """Channels of S's U-Net per level."""
    segmenter_stem: Literal["full", "strided"] = "full"
    """S's first level: ``full``, two convolutions at the patch's resolution (the paper's U-Net); ``strided``, a
    stride-2 convolution first, so every level works at half the resolution, and one convolution at full
    resolution on the up-sampled features with the input image before the head (more patches per second, fewer
    Dice per update: docs/performance.md, time to a good model, and docs/method.md)."""
    discriminator_widths: tuple[int, ...] = (8, 16, 32, 64)
    """Channels of D per stage (each stage halves the resolution)."""
    discriminator_blocks: int = 1
    """Residual blocks per discriminator stage (2 with widths 64-512 is a 3-D ResNet-18, as the authors used)."""
    generator: Literal["auto", "unet", "transfer"] = "auto"
    """G's kind: ``unet`` (the paper's 3-D U-Net) or ``transfer`` (a per-image intensity transfer function predicted
    from the image's histogram: it cannot paint anatomy; ``harmonized``'s until it was measured against the U-Net,
    docs/method.md). ``auto``: the method's (``unet`` for every method with a G); a run's config.json holds the
    kind it used."""
    discriminator: Literal["auto", "patch", "histogram"] = "auto"
    """D's input: ``patch`` (the paper's residual CNN on the patch) or ``histogram`` (a soft histogram of the
    patch's brain voxels: only the intensity distribution, not anatomy or texture). ``auto``: the method's."""
    discriminator_stem_norm: Literal["auto", "group", "none"] = "auto"
    """``group``: the paper's stem (GroupNorm right after the first convolution, blind to a patch's intensity
    scale); ``none``: no normalization in the stem. ``auto``: the method's."""
    generator_output: Literal["auto", "sigmoid", "residual", "additive"] = "auto"
    """A U-Net G's last step: ``sigmoid`` = 1.5 * sigmoid(U(x)), which learns the identity in the warm-up;
    ``residual`` = 1.5 * sigmoid(logit(x / 1.5) + U(x)), the identity from the start (measured: docs/method.md);
    ``additive`` = x + U(x), unbounded, the identity from the start: the form a U-Net G needs on the z-scored
    input (``harmonized``). ``auto``: ``additive`` for a U-Net G on the z-scored input, ``sigmoid`` otherwise
    (the paper's); a run's config.json holds the form it used."""


def segmenter_stride(m: ModelConfig) -> int:
    """S's down-sampling factor: a strided stem halves the resolution once more before the first level."""
    return total_stride(m.segmenter_widths) * (2 if m.segmenter_stem == "strided" else 1)


def model_stride(m: ModelConfig, *, unet_generator: bool = True) -> int:
    """What inputs to G and S together must be divisible by (a transfer G is voxel-wise: pass ``False``)."""
    s = segmenter_stride(m)
    return max(s, total_stride(m.generator_widths)) if unet_generator else s


@dataclass(frozen=True)
class LossConfig:
    """The segmentation loss (eq. 2) and the adversarial terms (eq. 1, 3, 4)."""

    dice_form: Literal["per_class", "single_ratio"] = "per_class"
    """``single_ratio``: eq. (2) as written, one ratio over all classes (the ``paper`` profile).
    ``per_class``: one Dice ratio per class, weighted mean; keeps classes from dying in short trainings
    (measured: docs/method.md)."""
    dice_weights: tuple[float, ...] | None = None
    """w_c per class, background first (background, CSF, GM, WM for the paper's classes). ``None``: inverse class
    frequency in the training patches, normalised to sum to 1, for ``single_ratio``; equal weights for
    ``per_class`` (docs/method.md)."""
    dice_epsilon: float = 1e-5
    """The epsilon of eq. (2) that keeps the ratio defined for empty classes."""
    adv_lambda: float = 1.0
    """lambda of eq. (1): the weight of G's adversarial term against L_seg."""
    adversary: Literal["auto", "paper", "confusion"] = "auto"
    """``paper``: eq. (1)-(4), D classifies real patches into K domains and G's output as a (K+1)-th class;
    ``confusion``: D classifies G's output into its K source domains and G makes D's posterior uniform
    (Dinsdale et al., NeuroImage 2021), so the adversary pushes the domains together. ``auto``: the method's."""
    adversary_view: Literal["patch", "image"] = "patch"
    """What the confusion adversary's D judges: ``patch``, the intensities of each training patch; ``image``, the
    whole image each patch comes from (its brain intensity quantile profile put through G's curve), so G is pushed
    to make the sites' whole-image distributions alike, which is what the JSD measures. ``image`` needs a
    transfer-function G (``harmonized`` with ``model.generator`` ``transfer``)."""
    confusion_form: Literal["cross_entropy", "entropy"] = "cross_entropy"
    """The confusion term's form: ``cross_entropy`` against the uniform posterior (Dinsdale et al. 2021; no upper
    bound, so a confident D pushes G without limit) or ``entropy``, KL(D's posterior || uniform), bounded by log K
    (``advnorm.training.losses.confusion_loss``)."""
    adv_ramp_epochs: int = 0
    """Epochs over which lambda ramps up from 0 (DANN's schedule 2 / (1 + exp(-10 p)) - 1); 0: lambda from the start."""
    adv_form: Literal["non_saturating", "saturating"] = "non_saturating"
    """G's adversarial term: ``saturating`` is eq. (1) as written, log p_D(fake | G(x)); ``non_saturating``
    minimises -log(1 - p_D(fake | G(x))), the same fixed point with gradients while D wins (docs/method.md)."""
    content_weight: float | None = None
    """Weight of a content-preservation term on G: the mean squared difference between G's output and its input
    over the brain voxels of each patch, added to G's loss (0: off). It keeps G near the identity (for
    ``harmonized``, near the z-scored input) unless the segmentation or the adversary pays for the change.
    ``None``: the method's (3.0 for ``harmonized``, measured in docs/method.md; 0 for every other method, so
    ``adversarial`` stays the paper's); a run's config.json holds the value it used."""

    slope_floor: float | None = None
    """With a transfer G (``model.generator`` ``transfer``): the slope of G's curve, relative to the identity's,
    below which the brain voxels of a patch cost G ``max(0, slope_floor - |slope|)`` each, averaged and added to
    G's loss (0: off; in [0, 1]). Against flat stretches that pile one tissue onto one value at a place of each
    site's own. ``None``: the method's (0.35 for ``harmonized`` with a transfer G, measured in docs/method.md; 0
    otherwise); a run's config.json holds the value it used."""


@dataclass(frozen=True)
class OptimConfig:
    """Optimizers of G, S and D and their plateau schedulers."""

    optimizer: Literal["sgd", "adam"] = "adam"
    """``sgd`` with momentum (the paper) or ``adam``, for all three networks."""
    lr_generator: float = 1e-3
    """Learning rate of G (paper: 1e-5)."""
    lr_segmenter: float = 3e-3
    """Learning rate of S (paper: 1e-4). The quick profile's 3e-3 reaches a given Dice in fewer updates than 1e-3
    within its budget (docs/method.md)."""
    lr_discriminator: float = 2e-4
    """Learning rate of D (paper: 1e-4)."""
    momentum: float = 0.9
    """SGD momentum (unused by Adam)."""
    weight_decay: float = 0.0
    """L2 weight decay of every optimizer (paper: 0.1)."""
    plateau_patience: int = 3
    """Epochs without a lower validation loss before the learning rates drop."""
    plateau_factor: float = 0.1
    """Factor the learning rates are multiplied by on a plateau."""
    plateau_floor: float = 0.0
    """The lowest learning rate the plateau rule may set, as a fraction of each network's initial rate (0: no
    floor, the paper's). Without one, a long run whose validation loss rises once is compared with its best epoch
    ever after and cut every ``plateau_patience + 1`` epochs until it freezes (docs/method.md, the strided stall)."""
    schedule: Literal["plateau", "cosine"] = "plateau"
    """How the main phase's learning rates change. ``plateau`` (the paper's): cut by ``plateau_factor`` when the
    validation loss stalls. ``cosine``: every rate follows half a cosine from its initial value down to 0 over
    ``train.epochs``, stepped after each main epoch, whatever the validation says, so a fixed budget ends annealed
    (docs/method.md, "Annealing the quick budget"); ``--resume`` with more epochs goes on along the longer budget's
    curve from where the run stands."""


DEMO_EPOCHS = 16
"""``advnorm demo``'s main epochs: 400 S updates, a third of the quick profile's budget, so that its two trainings end
within 15 minutes on 2 cores. What it costs in Dice, measured: docs/method.md, "The quick profile at the plateau
budget"."""
INFERENCE_OVERLAP = 0.5
"""Overlap of neighbouring windows of whole-volume inference, whose edge is by default the run's training patch
size (``train.patch_size``), as nnU-Net does: what the networks saw in training. Until 2026-11-28 the default
was 160^3 windows at overlap 0.25, twice as fast; `augmented` and `adversarial` segment differently with them
(docs/method.md, "Whole-volume inference and the window"); ``--window 160 --overlap 0.25`` restores it."""
INFERENCE_PASS_VOXELS = 160**3
"""The most voxels one forward pass of inference takes (several small windows share a pass up to it): the
memory of the 160^3 window that was the default, measured to fit (docs/performance.md)."""


@dataclass(frozen=True)
class TrainConfig:
    """The training budget, batches and patches, and where it runs."""

    epochs: int = 48
    """Epochs that update S (the main phase): the same budget of S updates for every method (with
    ``stop_patience``, the most it may take). The quick profile's 48 x 25 = 1,200 updates are where every method's
    validation curve has flattened on the phantom and on realistic-layout data (``augmented``'s on the phantom since
    it augments a quarter of its patches, ``train.augment_share``; 16 until 2026-11-28, 0.02-0.05 mean Dice below;
    docs/method.md, "The quick profile at the plateau budget");
    ``advnorm demo`` trains 16 to stay within 15 minutes."""
    stop_patience: int = 0
    """Stop the main phase after this many epochs without a lower validation loss (the rule ``checkpoint_best``
    is chosen by); ``train.epochs`` stays the cap. 0: off, every method runs ``train.epochs`` (equal budgets)."""
    warmup_epochs: int = 1
    """Epochs before the main phase in which only G learns to reproduce its input (paper: 3). They come on top
    of ``epochs``, so every method gets the same S updates; methods without G have none."""
    steps_per_epoch: int | None = 25
    """Batches per epoch; ``None`` means one pass over the training patch index (the paper's epoch)."""
    warmup_steps_per_epoch: int | None = 8
    """Batches per warm-up epoch; ``None``: one pass over the training patch index."""
    batch_size: int = 12
    """Patches per step, balanced across domains (the global batch under torchrun)."""
    patch_size: int = 32
    """Edge of the cubic training patches in voxels (a multiple of the U-Nets' total stride)."""
    patch_stride: int = 8
    """Spacing of the patch centres on the labelled brain (the paper's stride)."""
    val_patches: int = 48
    """Validation patches scored after every epoch (a fixed, domain-balanced sample). 96 until 2026-11-27: half
    as many picked checkpoints as good on 3 seeds (docs/method.md, "Cheaper validation")."""
    bn_recalibration_batches: int = 4
    """Before every validation, BatchNorm's running statistics are recomputed over this many fixed training
    batches with the current weights ("precise BN"): validation, checkpoints and inference then normalize as
    training did. 0 keeps the exponential running averages (docs/method.md has the measurement). 16 until
    2026-11-27 (the paper profile keeps 16)."""
    seed: int = 0
    """Seed of the initialisation, the batches and the augmentation (``reproduce --seeds N`` runs 0..N-1)."""
    augment_bias: float = 0.3
    """``augmented`` only: the bound of its random bias field's log-gain at 4^3 points across each patch (0: no
    field). The default makes the field vary within a patch far faster than a scanner's does across a head."""
    augment_noise: float = 0.0
    """``augmented`` only: the bound of its Gaussian noise's standard deviation, drawn per patch in [0, bound]
    (images are roughly in [0, 1.5]; 0: no noise). It was 0.08 until measured: noise above an isointense infant
    T1's GM-WM contrast (about 0.03 here) made S lose tissues (docs/method.md); runs made before lacked the key."""
    augment_share: float = 0.25
    """``augmented`` only: the share of training patches it augments (each patch drawn at random); the rest reach S
    as they are, as nnU-Net applies each of its intensity transforms to a share of patches. 1 (every patch) until
    2026-11-28: a quarter learned faster, reached its plateau within the quick budget on the phantom and scored
    higher, on 3 seeds per data set (docs/method.md, "Augmenting a share of the patches")."""
    contrast_randomisation: float = 0.0
    """Share of training patches whose image is put through a random intensity curve first (tissues get random,
    possibly inverted levels; the image's statistics follow): contrasts no site showed, for sites never seen
    (``advnorm.training.contrast``). 0: off."""
    d_steps: int = 1
    """Updates of D per update of G and S (n_critic)."""
    d_during_warmup: bool = False
    """Train D on real patches during G's identity warm-up too, so it knows the domains when the adversary starts."""
    amp: bool = False
    """bf16 autocast (CPU and GPUs that support it)."""
    device: str = "auto"
    """``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    channels_last: bool = True
    """Channels-last 3-D memory format for the networks (faster convolutions on CPUs and GPUs)."""


@dataclass(frozen=True)
class DataConfig:
    """How each domain's subjects are split, and the raw input rescale."""

    split: Literal["subject", "patch"] = "subject"
    """``subject``: whole subjects in training, validation and test; ``patch``: the paper's split of patches,
    which puts overlapping patches of one subject on both sides (optimistic scores; warns)."""
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    """Training, validation and test shares of each domain's labelled subjects (each set gets at least one)."""
    split_seed: int = 0
    """Seed of the subject split. Apart from ``train.seed``, so runs repeated with other seeds keep their test
    subjects."""
    train_domain: str | None = None
    """For ``--method single``: the one domain to train on (default: the first ``--data``)."""
    left_out_domain: str | None = None
    """For multi-domain methods: a ``--data`` domain kept out of training and tested as a site never seen
    (``reproduce --unseen``, leave-one-domain-out). Its test subjects are those of the usual split."""
    scale_percentile: float = 99.5
    """Per-image linear rescale of raw inputs: brain intensities mapped so this percentile is 1."""


@dataclass(frozen=True)
class Config:
    """A run's whole configuration."""

    profile: str = "quick"
    """The profile the run started from: ``quick`` or ``paper``."""
    method: Method = "adversarial"
    """What to train: a row of ``advnorm.methods.METHOD_SPECS`` (``--method``)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def quick_profile() -> Config:
    """Small nets and Adam: trains on 2 CPU cores in minutes (measured choices in docs/method.md)."""
    return Config(profile="quick")


def paper_profile() -> Config:
    """The authors' configuration (paper sec. 3.3 and their code)."""
    return Config(
        profile="paper",
        model=ModelConfig(
            generator_widths=(64, 128, 256, 512),
            segmenter_widths=(64, 128, 256, 512),
            discriminator_widths=(64, 128, 256, 512),
            discriminator_blocks=2,
        ),
        loss=LossConfig(dice_form="single_ratio"),
        optim=OptimConfig(
            optimizer="sgd",
            lr_generator=1e-5,
            lr_segmenter=1e-4,
            lr_discriminator=1e-4,
            momentum=0.9,
            weight_decay=0.1,
            plateau_patience=3,
            plateau_factor=0.1,
        ),
        train=TrainConfig(
            epochs=47,  # + 3 warm-up epochs: the authors' 50
            warmup_epochs=3,
            steps_per_epoch=None,
            warmup_steps_per_epoch=None,
            batch_size=16,
            val_patches=2048,
            bn_recalibration_batches=16,
            channels_last=True,
        ),
    )


PROFILES = {"quick": quick_profile, "paper": paper_profile}


@dataclass(frozen=True)
class Ingredients:
    """What a run's method is made of, after resolving ``auto`` against the method table."""

    generator: str | None
    """``unet``, ``transfer``, or ``None`` (no G)."""
    generator_output: str
    """A U-Net G's last step (``sigmoid`` also where there is no U-Net G: the setting does nothing there)."""
    adversary: str | None
    """``paper``, ``confusion``, or ``None`` (no D)."""
    discriminator: str
    stem_norm: str
    content_weight: float
    """The content-preservation term's weight (0 without G)."""
    slope_floor: float
    """The floor on a transfer G's slope (0: off, and without a transfer G)."""


def ingredients(cfg: Config) -> Ingredients:
    """The generator, adversary and discriminator of ``cfg``: the method's, unless the config chooses."""
    spec = METHOD_SPECS[cfg.method]
    m, loss = cfg.model, cfg.loss

    def pick(value: str, default: str) -> str:
        return default if value == "auto" else value

    generator = pick(m.generator, spec.generator) if spec.uses_generator else None
    additive = generator == "unet" and spec.input_transform != "scale"  # an unbounded input needs an unbounded G
    output = pick(m.generator_output, "additive" if additive else "sigmoid")
    weight = spec.content_weight if loss.content_weight is None else loss.content_weight
    floor = loss.slope_floor
    if floor is None:
        floor = spec.slope_floor if generator == "transfer" else 0.0
    return Ingredients(
        generator=generator,
        generator_output=output,
        adversary=pick(loss.adversary, spec.adversary) if spec.uses_discriminator else None,
        discriminator=pick(m.discriminator, spec.discriminator),
        stem_norm=pick(m.discriminator_stem_norm, spec.stem_norm),
        content_weight=weight if spec.uses_generator else 0.0,
        slope_floor=floor,
    )
