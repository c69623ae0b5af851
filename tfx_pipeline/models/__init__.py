"""Backbones for the trainer: EfficientNet-Lite0 (offline ImageNet weights), EfficientNetB0, tiny.

Every backbone maps float32 pixels in [0, 255] [N, size, size, 3] to a feature vector.
"""
import os

BACKBONES = ("efficientnet_lite0", "efficientnet_b0", "tiny")
DEFAULT_IMAGE_SIZE = {"efficientnet_lite0": 224, "efficientnet_b0": 224, "tiny": 64}


def feature_extractor(name: str, image_size: int):
    """The named backbone (ImageNet weights where it has them) for ``image_size`` images."""
    if name == "efficientnet_lite0":
        from tfx_pipeline.models import efficientnet_lite0

        return efficientnet_lite0.feature_extractor(image_size)
    if name == "efficientnet_b0":
        from tfx_pipeline.models import efficientnet_b0

        return efficientnet_b0.feature_extractor(image_size)
    if name == "tiny":
        from tfx_pipeline.models import tiny

        return tiny.feature_extractor(image_size)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


def weights_file(name: str) -> str | None:
    """The local file the named backbone's weights load from, where it has one and it exists
    (Lite0's converted ImageNet weights once converted; B0's ``$HOTDOG_B0_WEIGHTS``)."""
    if name == "efficientnet_lite0":
        from tfx_pipeline.models import efficientnet_lite0

        path = efficientnet_lite0.cache_path()
    elif name == "efficientnet_b0":
        from tfx_pipeline.models import efficientnet_b0

        path = efficientnet_b0.weights_file()
    else:
        path = None
    return path if path and os.path.isfile(path) else None
