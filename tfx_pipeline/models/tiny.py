"""A small random-init CNN for fast plumbing tests (not for accuracy)."""


def feature_extractor(image_size: int):
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((image_size, image_size, 3), name="pixels")
    x = layers.Rescaling(1 / 255.0)(inputs)
    for filters in (16, 32):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, x, name="tiny")
