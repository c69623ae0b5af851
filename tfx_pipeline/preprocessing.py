"""Transform module: keeps the encoded image bytes and turns the one-hot label into float32.

The original wrote decoded float32 224x224x3 tensors into the transformed examples
(183 MB for 1,200 images); keeping the bytes keeps them at the size of the JPEGs and
moves decoding into the trainer's tf.data pipeline and the serving signature.
"""
import tensorflow as tf

IMAGE_KEY = "image"
LABEL_KEY = "label"


def preprocessing_fn(inputs):
    """tf.Transform: {image: string [N], label: float32 [N, classes]}."""
    image = inputs[IMAGE_KEY]
    if image.shape.rank == 2:  # SchemaGen(infer_feature_shape=True) gives a [N, 1] dense feature
        image = tf.squeeze(image, axis=1)
    return {IMAGE_KEY: image, LABEL_KEY: tf.cast(inputs[LABEL_KEY], tf.float32)}
