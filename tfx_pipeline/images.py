"""Image decoding shared by training, serving and scoring: one resize rule everywhere.

Any format ``tf.io.decode_image`` reads (JPEG, PNG, GIF first frame, BMP) is decoded to
RGB and resized to ``size`` x ``size`` with antialiased bilinear interpolation (the
original cropped or padded to 224 x 224, which cut off or shrank the dish depending on
the photo's size). Pixels stay float32 in [0, 255]; each backbone normalises them.
"""
import tensorflow as tf


def decode_and_resize(image_bytes: tf.Tensor, size: int) -> tf.Tensor:
    """One encoded image (scalar string) -> float32 [size, size, 3] in [0, 255]."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def decode_batch(image_bytes: tf.Tensor, size: int) -> tf.Tensor:
    """A batch of encoded images [N] -> float32 [N, size, size, 3]."""
    return tf.map_fn(lambda b: decode_and_resize(b, size), image_bytes,
                     fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32))
