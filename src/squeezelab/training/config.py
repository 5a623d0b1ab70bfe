"""The resolved configuration of one training run: a frozen dataclass, validated once.

Every field has a default; a run, a study file or a ``--set`` override lists only what
differs. The run's own fields are declared below with :func:`squeezelab.fields.option`
(default, help, allowed values); the model fields are not written here at all: they are the
registered model families' options (``SqueezeNetOptions``, ``AlexNetOptions``), appended to
``RunConfig`` when this module loads. ``validate()`` names the bad field and its allowed values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..fields import FieldInfo, check_all, describe, option, refuse_unknown
from ..fields import coerce as coerce_field
from ..models import list_models
from ..models.registry import all_options, model_options
from .recipes import check_recipe_name
from .recipes import resolve as resolve_recipe

SCHEDULERS = ("none", "step", "plateau", "linear", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Readings of the study's "randomly cropped, resized to 64x64, and randomly flipped horizontally
# before each use" (squeezelab.data.pipeline implements each; a test keeps the names in step).
AUGMENTATIONS = ("pad-crop", "random-resized-crop", "resize-then-crop")
EVAL_TRANSFORMS = ("none", "train")
NORMALIZATIONS = ("imagenet", "cifar10", "none")
SEED_MAX = 2**32 - 1
EPOCHS_MAX = 100_000


@dataclass(frozen=True)
class _RunFields:
    """The run's own fields (the model's come from its family's options class)."""

    model: str = option(
        "squeezenet1_0", f"network: {', '.join(list_models())} (squeezelab info --list)"
    )
    init: str | None = option(
        None, "start from: imagenet (torchvision's weights) or a .pth / run directory", kind=str
    )
    # data
    data: str = option(
        "synthetic", "cifar10, cifar100, synthetic[:N], or a folder / .tar(.gz) / .zip of classes"
    )
    image_size: int = option(64, "input side in pixels", low=1, high=4096)
    val_fraction: float = option(
        0.1, "validation fraction", low=0.0, high=1.0, low_open=True, high_open=True
    )
    test_fraction: float = option(
        0.1, "test fraction", low=0.0, high=1.0, low_open=True, high_open=True
    )
    split_seed: int = option(0, "seed of the train / val / test split", low=0, high=SEED_MAX)
    train_subset: int | None = option(
        None, "train on the first N images of the seeded training split", kind=int, low=1,
        high=10**9,
    )  # fmt: skip
    augmentation: str = option(
        "pad-crop",
        "training transform: pad-crop (4-pixel zero padding, random crop, resize, flip), "
        "random-resized-crop (torchvision's RandomResizedCrop, scale crop_scale-1, then flip) or "
        "resize-then-crop (resize to size / 0.875, random crop, flip)",
        choices=AUGMENTATIONS,
    )
    crop_scale: float = option(
        0.08,
        "random-resized-crop: the smallest crop's fraction of the image's area",
        low=0.0,
        high=1.0,
        low_open=True,
    )
    eval_transform: str = option(
        "none",
        "validation and test images: none (as they are) or train (the training transforms, "
        "drawn from a fixed seed so an evaluation repeats)",
        choices=EVAL_TRANSFORMS,
    )
    normalization: str = option(
        "imagenet",
        "input normalization: imagenet (its mean / std), cifar10 (CIFAR-10's) or none "
        "(pixels in 0-1)",
        choices=NORMALIZATIONS,
    )
    # optimization
    epochs: int = option(10, "training epochs", low=1, high=EPOCHS_MAX)
    batch_size: int = option(64, "images per step", low=1, high=1 << 20)
    lr: float = option(0.01, "learning rate (peak for onecycle)", low=0.0, low_open=True)
    momentum: float = option(0.9, "SGD momentum", low=0.0, high=1.0, high_open=True)
    weight_decay: float = option(0.0, "L2 weight decay", low=0.0)
    nesterov: bool = option(False, "Nesterov momentum")
    scheduler: str = option("none", "learning-rate schedule", choices=SCHEDULERS)
    step_size: int = option(10, "epochs between step decays", low=1, high=EPOCHS_MAX)
    step_gamma: float = option(0.1, "step decay factor", low=0.0, high=1.0, low_open=True)
    plateau_patience: int = option(3, "plateau: epochs without improvement", low=0, high=EPOCHS_MAX)
    plateau_factor: float = option(
        0.5, "plateau decay factor", low=0.0, high=1.0, low_open=True, high_open=True
    )
    warmup_epochs: int = option(0, "linear warm-up epochs", low=0, high=EPOCHS_MAX)
    label_smoothing: float = option(0.0, "label smoothing", low=0.0, high=1.0, high_open=True)
    ema_decay: float = option(
        0.0,
        "decay of an exponential moving average of the weights, updated every step; when "
        "> 0, evaluation and the saved model use the averaged weights (0: off). Batch-norm "
        "statistics are averaged too, so over a short run at a high rate they lag the "
        "averaged weights",
        low=0.0,
        high=1.0,
        high_open=True,
    )
    tta_flip: bool = option(
        False, "evaluate each image and its mirror image, averaging their logits"
    )
    recipe: str = option(
        "none",
        "a named recipe whose fields fill what the run does not set (study, modern; "
        "recorded with its version, e.g. modern@1; a stored run keeps an older version)",
    )
    # run
    seed: int = option(0, "seed of initialization, order and augmentation", low=0, high=SEED_MAX)
    precision: str = option("auto", "arithmetic (auto: bf16 where it pays)", choices=PRECISIONS)
    test_each_epoch: bool = option(
        False, "also evaluate the test split after every epoch (learning curves)"
    )

    def validate(self) -> RunConfig:
        """Check every field; raise :class:`ConfigError` naming the first bad one."""
        if self.model not in list_models():
            raise ConfigError(
                f"model must be one of {', '.join(list_models())}; got {self.model!r}"
            )
        check_all(self)
        check_recipe_name(self.recipe)
        rrc = self.augmentation == "random-resized-crop"
        if self.crop_scale != _DEFAULTS["crop_scale"] and not rrc:
            raise ConfigError(
                f"crop_scale applies to augmentation='random-resized-crop' only "
                f"(augmentation is {self.augmentation!r})"
            )
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs momentum > 0")
        if self.warmup_epochs and self.scheduler in ("plateau", "onecycle"):
            raise ConfigError(
                f"warmup_epochs does not combine with scheduler={self.scheduler!r} "
                "(onecycle warms up by itself; plateau reacts to validation loss)"
            )
        refuse_unknown(self.model_options(), model_options(self.model), f"model {self.model!r}",
                       "option")  # fmt: skip
        return self  # type: ignore[return-value]

    def model_options(self) -> dict[str, Any]:
        """Return the model options that differ from their defaults."""
        return {n: getattr(self, n) for n in MODEL_FIELDS if getattr(self, n) != _DEFAULTS[n]}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A stable hash of the resolved config: a run's identity in the store.

        Fields added after the first release join the hash only when set away from their
        default, so adding an option never changes the key of a run already stored.
        """
        values = {
            k: v for k, v in self.to_dict().items() if k in KEY_FIELDS_V1 or v != _DEFAULTS[k]
        }
        blob = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> RunConfig:
        return from_dict({**self.to_dict(), **changes})


def _model_field(info: FieldInfo) -> tuple[str, type, Any]:
    return (
        info.name,
        info.kind,
        dataclasses.field(default=info.default, metadata={"spec": info.spec}),
    )


if TYPE_CHECKING:
    # What a type checker sees: the run's fields and every family's options. The runtime
    # class below is built from the registry itself; a test keeps the two in step.
    from ..models.alexnet import AlexNetOptions
    from ..models.squeezenet import SqueezeNetOptions

    @dataclass(frozen=True)
    class RunConfig(_RunFields, SqueezeNetOptions, AlexNetOptions):
        """Everything that determines one run's result (not where it runs)."""

else:
    RunConfig = dataclasses.make_dataclass(
        "RunConfig",
        [_model_field(info) for info in all_options().values()],
        bases=(_RunFields,),
        frozen=True,
        namespace={
            "__doc__": "Everything that determines one run's result (not where it runs).",
            "__module__": __name__,
        },
    )
MODEL_FIELDS = tuple(all_options())
_FIELDS: dict[str, FieldInfo] = describe(RunConfig)
_DEFAULTS = {name: info.default for name, info in _FIELDS.items()}
# The fields of the first release, hashed always (see RunConfig.key).
KEY_FIELDS_V1 = frozenset(
    [
        "model",
        "dropout",
        "batch_norm",
        "fire_delta",
        "bypass",
        "base_e",
        "incr_e",
        "freq",
        "pct3x3",
        "squeeze_ratio",
        "init",
        "data",
        "image_size",
        "val_fraction",
        "test_fraction",
        "split_seed",
        "train_subset",
        "epochs",
        "batch_size",
        "lr",
        "momentum",
        "weight_decay",
        "nesterov",
        "scheduler",
        "step_size",
        "step_gamma",
        "plateau_patience",
        "plateau_factor",
        "warmup_epochs",
        "label_smoothing",
        "seed",
        "precision",
        "test_each_epoch",
    ]
)


def field_names() -> list[str]:
    """Return every run-config field name."""
    return list(_FIELDS)


def field_info(name: str) -> FieldInfo:
    """A run-config field's default, type, help and allowed values."""
    refuse_unknown([name], _FIELDS, "config")
    return _FIELDS[name]


def from_dict(values: dict[str, Any], where: str = "config") -> RunConfig:
    """Build a validated config from a mapping; unknown fields and bad types are named."""
    refuse_unknown(values, _FIELDS, where)
    try:
        values = resolve_recipe(values)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    coerced = {k: coerce(k, v, where) for k, v in values.items()}
    try:
        return RunConfig(**coerced).validate()
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def coerce(name: str, value: Any, where: str = "config") -> Any:
    """Convert ``value`` (possibly a command-line string) to field ``name``'s type."""
    refuse_unknown([name], _FIELDS, where)
    return coerce_field(_FIELDS[name], value, where)
