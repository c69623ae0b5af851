"""``TrainSettings``: every training default in one place, read by the CLI, the flows, the
deployments, the Airflow DAG, the Vertex compile, ``create_pipeline`` and the trainer.

Plain data with no dependency, so the trainer reads it inside any backend's container.
"""
from __future__ import annotations

import dataclasses

STRATEGIES = ("fast", "finetune")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """What the pipeline is asked to do. ``image_size`` None: the backbone's default (pixels);
    ``train_steps``/``eval_steps`` are per epoch (finetune); ``seed`` seeds the model's
    initialisation and the training shuffle."""

    backbone: str = "efficientnet_lite0"
    strategy: str = "fast"
    image_size: int | None = None
    epochs: int = 20
    train_steps: int = 25
    eval_steps: int = 12
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 3
    seed: int = 42
    min_accuracy: float = 0.55
    max_regression: float = 0.0

    def problems(self) -> list[str]:
        """What is wrong with these settings, one sentence per option (empty: valid)."""
        from tfx_pipeline.models import BACKBONES

        found = []
        if self.backbone not in BACKBONES:
            found.append(f"--backbone {self.backbone!r} is not known; choose one of {', '.join(BACKBONES)}")
        if self.strategy not in STRATEGIES:
            found.append(f"--strategy {self.strategy!r} is not known; choose one of {', '.join(STRATEGIES)}")
        for name in ("epochs", "train_steps", "eval_steps", "batch_size", "patience"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                found.append(f"--{name.replace('_', '-')} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 32):
            found.append(f"--image-size must be an integer >= 32, got {self.image_size!r}")
        if not isinstance(self.seed, int):
            found.append(f"seed must be an integer, got {self.seed!r}")
        if not 0 < self.learning_rate < 1:
            found.append(f"learning_rate must be within (0, 1), got {self.learning_rate}")
        if not 0 <= self.min_accuracy <= 1:
            found.append(f"--min-accuracy must be within [0, 1], got {self.min_accuracy}")
        if not 0 <= self.max_regression <= 1:
            found.append(f"--max-regression must be within [0, 1], got {self.max_regression}")
        return found

    def resolved_image_size(self) -> int:
        from tfx_pipeline.models import DEFAULT_IMAGE_SIZE

        return self.image_size or DEFAULT_IMAGE_SIZE[self.backbone]

    def replace(self, **changes) -> "TrainSettings":
        """A copy with ``changes``; keys that are None keep this object's value."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


DEFAULTS = TrainSettings()
