"""Trainer module (``run_fn``): transfer learning on the encoded images of the Transform output.

Strategies (``custom_config['strategy']``):
  fast      the backbone is frozen; its features are computed once per image and the
            head (Dropout 0.2 -> Dense softmax) is trained on them for up to ``epochs``
            epochs with early stopping. Default.
  finetune  the original recipe: the whole network is trained end to end from decoded
            images (Adam 1e-3, batch 32, ``train_steps`` per epoch, up to ``epochs``
            epochs, early stopping on val_accuracy with patience 3).
Both export one SavedModel with two signatures over serialized tf.Examples holding ``image``
(encoded bytes): ``serving_default`` returns ``outputs``, the softmax over the classes in label
order; ``classify`` returns ``scores`` (the same softmax) and ``classes`` (each row the class
names, as TF Serving's classify API). The names are also the asset ``assets/class_names.txt``
(UTF-8, one per line, in label order). Every setting comes from ``custom_config``
(``pipeline.trainer_config``; defaults in ``settings.TrainSettings``).
"""
from __future__ import annotations

import json
import logging
import os
import time

import tensorflow as tf

from tfx_pipeline import images
from tfx_pipeline.preprocessing import IMAGE_KEY, LABEL_KEY

CLASS_NAMES_ASSET = "class_names.txt"


def run_fn(fn_args):
    """TFX Trainer entry point."""
    import tensorflow_transform as tft

    from tfx_pipeline import models

    config = fn_args.custom_config
    tf.keras.utils.set_random_seed(config["seed"])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    feature_spec = tf_transform_output.transformed_feature_spec()
    size = config["image_size"]
    train = _examples(fn_args.train_files, feature_spec)
    evaluation = _examples(fn_args.eval_files, feature_spec)
    n_classes = feature_spec[LABEL_KEY].shape[0]
    backbone = models.feature_extractor(config["backbone"], size)
    stats = {"backbone": config["backbone"], "strategy": config["strategy"], "image_size": size}
    started = time.perf_counter()
    if config["strategy"] == "fast":
        model, history = _train_fast(backbone, train, evaluation, n_classes, config, stats)
    elif config["strategy"] == "finetune":
        model, history = _train_finetune(backbone, train, evaluation, n_classes, config, fn_args, stats)
    else:
        raise ValueError(f"unknown strategy {config['strategy']!r}; choose fast or finetune")
    stats["train_seconds"] = round(time.perf_counter() - started, 2)
    stats["epochs_run"] = len(history.get("loss", []))
    stats["best_val_accuracy"] = max(history.get("val_accuracy", [0.0]))
    logging.getLogger("hotdog.progress").info(
        "        %d of at most %d epochs%s, best val_accuracy %.3f, %.0f s", stats["epochs_run"], config["epochs"],
        " (early stop)" if stats["epochs_run"] < config["epochs"] else "", stats["best_val_accuracy"],
        stats["train_seconds"])
    _export(model, fn_args.serving_model_dir, size, config.get("classes") or [str(i) for i in range(n_classes)])
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "training_stats.json"), "w") as handle:
        handle.write(json.dumps({**stats, "history": history}, indent=2))


def _examples(file_pattern, feature_spec) -> tf.data.Dataset:
    files = tf.io.gfile.glob(file_pattern) if isinstance(file_pattern, str) else [
        f for pattern in file_pattern for f in tf.io.gfile.glob(pattern)]
    spec = {IMAGE_KEY: feature_spec[IMAGE_KEY], LABEL_KEY: feature_spec[LABEL_KEY]}
    return (tf.data.TFRecordDataset(sorted(files), compression_type="GZIP")
            .map(lambda record: tf.io.parse_single_example(record, spec), num_parallel_calls=tf.data.AUTOTUNE))


def _pixels(dataset: tf.data.Dataset, size: int) -> tf.data.Dataset:
    """(pixels, label): encoded images are decoded here; already-decoded float images (the
    original Transform's output) are only brought to ``size``."""
    def to_pixels(example):
        image = example[IMAGE_KEY]
        if image.dtype == tf.string:
            return images.decode_and_resize(image, size), example[LABEL_KEY]
        return tf.image.resize_with_crop_or_pad(image, size, size), example[LABEL_KEY]

    return dataset.map(to_pixels, num_parallel_calls=tf.data.AUTOTUNE)


def _head(n_features: int, n_classes: int):
    inputs = tf.keras.Input((n_features,), name="features")
    x = tf.keras.layers.Dropout(0.2)(inputs)
    outputs = tf.keras.layers.Dense(n_classes, activation="softmax", name="outputs")(x)
    return tf.keras.Model(inputs, outputs, name="head")


def _compile(model, learning_rate: float):
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=[tf.keras.metrics.CategoricalAccuracy(name="accuracy")])


def _early_stopping(patience: int):
    return tf.keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience, restore_best_weights=True)


def _features(backbone, dataset: tf.data.Dataset, size: int, batch: int):
    """Run the frozen backbone once over ``dataset``: (features [N, F], labels [N, C])."""
    extract = tf.function(lambda pixels: backbone(pixels, training=False))
    xs, ys = [], []
    for pixels, labels in _pixels(dataset, size).batch(batch).prefetch(2):
        xs.append(extract(pixels))
        ys.append(labels)
    return tf.concat(xs, 0), tf.concat(ys, 0)


def _train_fast(backbone, train, evaluation, n_classes, config, stats):
    backbone.trainable = False
    started = time.perf_counter()
    x_train, y_train = _features(backbone, train, config["image_size"], 64)
    x_eval, y_eval = _features(backbone, evaluation, config["image_size"], 64)
    seconds = time.perf_counter() - started
    stats.update(train_images=int(x_train.shape[0]), eval_images=int(x_eval.shape[0]),
                 feature_seconds=round(seconds, 2),
                 feature_images_per_second=round((x_train.shape[0] + x_eval.shape[0]) / seconds, 1))
    head = _head(int(x_train.shape[1]), n_classes)
    _compile(head, config["learning_rate"])
    history = head.fit(x_train, y_train, batch_size=config["batch_size"], epochs=config["epochs"],
                       validation_data=(x_eval, y_eval), callbacks=[_early_stopping(config["patience"])],
                       verbose=2)
    model = tf.keras.Model(backbone.input, head(backbone.output), name="classifier")
    return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}


def _train_finetune(backbone, train, evaluation, n_classes, config, fn_args, stats):
    backbone.trainable = True
    size, batch = config["image_size"], config["batch_size"]
    head = _head(int(backbone.output.shape[-1]), n_classes)
    model = tf.keras.Model(backbone.input, head(backbone.output), name="classifier")
    _compile(model, config["learning_rate"])
    train_ds = _pixels(train.shuffle(2048, seed=config["seed"]).repeat(), size).batch(batch).prefetch(2)
    eval_ds = _pixels(evaluation, size).batch(batch).cache().repeat().prefetch(2)
    started = time.perf_counter()
    history = model.fit(train_ds, steps_per_epoch=fn_args.train_steps, epochs=config["epochs"],
                        validation_data=eval_ds, validation_steps=fn_args.eval_steps,
                        callbacks=[_early_stopping(config["patience"])], verbose=2)
    images_seen = len(history.history["loss"]) * fn_args.train_steps * batch
    stats["train_images_per_second"] = round(images_seen / (time.perf_counter() - started), 1)
    return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}


def _export(model, serving_model_dir: str, size: int, classes: list[str]) -> None:
    """Save with ``serving_default`` (-> ``outputs``) and ``classify`` (-> ``scores``, ``classes``),
    the class names as an asset."""
    import tempfile

    if len(classes) != model.output.shape[-1]:
        raise ValueError(f"{len(classes)} class names {classes} for a model of {model.output.shape[-1]} outputs")

    def probabilities(serialized):
        parsed = tf.io.parse_example(serialized, {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)})
        return model(images.decode_batch(parsed[IMAGE_KEY], size), training=False)

    names = tf.constant(classes)
    examples = tf.TensorSpec([None], tf.string, name="examples")

    @tf.function(input_signature=[examples])
    def serve(serialized):
        return {"outputs": probabilities(serialized)}

    @tf.function(input_signature=[examples])
    def classify(serialized):
        scores = probabilities(serialized)
        return {"scores": scores, "classes": tf.tile(names[tf.newaxis], [tf.shape(scores)[0], 1])}

    with tempfile.TemporaryDirectory() as scratch:
        asset = os.path.join(scratch, CLASS_NAMES_ASSET)
        with open(asset, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{name}\n" for name in classes))
        model.class_names = tf.saved_model.Asset(asset)
        model.save(serving_model_dir, save_format="tf", signatures={"serving_default": serve, "classify": classify})
