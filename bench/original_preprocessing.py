"""The original project's Transform, for bench/train.py only: decode, cast to float32 and
crop-or-pad to 224 x 224 inside Transform, so the transformed examples carry pixels."""
import tensorflow as tf

SIZE = 224


def preprocessing_fn(inputs):
    image = tf.squeeze(inputs["image"], axis=1) if inputs["image"].shape.rank == 2 else inputs["image"]

    def decode(data):
        pixels = tf.io.decode_image(data, channels=3, expand_animations=False)
        pixels.set_shape([None, None, 3])
        return tf.image.resize_with_crop_or_pad(tf.cast(pixels, tf.float32), SIZE, SIZE)

    pixels = tf.map_fn(decode, image, fn_output_signature=tf.TensorSpec((SIZE, SIZE, 3), tf.float32))
    return {"image": pixels, "label": tf.cast(inputs["label"], tf.float32)}
