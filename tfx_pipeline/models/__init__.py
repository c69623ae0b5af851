"""Backbones for the trainer: EfficientNet-Lite0 (offline ImageNet weights), EfficientNetB0, tiny."""
