"""Backbones for the trainer: EfficientNet-Lite0 (offline ImageNet weights), EfficientNetB0, tiny.

Every backbone maps float32 pixels in [0, 255] [N, size, size, 3] to a feature vector.
"""
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
