"""Trainer module (``run_fn``): transfer learning on the encoded images of the Transform output.

Strategies (``custom_config['strategy']``):
  fast      the backbone is frozen; its features are computed once per image and backbone
            (``feature_cache``: kept under the pipeline root, so a continuous-training step
            computes only its new images) and the head (Dropout 0.2 -> Dense softmax) is
            trained on them for up to ``epochs`` epochs with early stopping. The cache also
            keeps the backbone's TFLite copy and frozen graph, so a later step exports
            without building the Keras backbone. Default.
  finetune  the original recipe: the whole network is trained end to end from decoded
            images (Adam 1e-3, batch 32, ``train_steps`` per epoch, up to ``epochs``
            epochs, early stopping on val_accuracy with patience 3).
Both export one SavedModel with two signatures over serialized tf.Examples holding ``image``
(encoded bytes): ``serving_default`` returns ``outputs``, the softmax over the classes in label
order; ``classify`` returns ``scores`` (the same softmax) and ``classes`` (each row the class
names, as TF Serving's classify API). The names are also the asset ``assets/class_names.txt``
(UTF-8, one per line, in label order), and the classifier's TFLite copy (``tflite.write_copy``),
which scoring and serving run. Every setting comes from ``custom_config``
(``pipeline.trainer_config``; defaults in ``settings.TrainSettings``).
"""
from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import tensorflow as tf

from tfx_pipeline import feature_cache, images, tflite
from tfx_pipeline.preprocessing import IMAGE_KEY, LABEL_KEY

CLASS_NAMES_ASSET = "class_names.txt"


def run_fn(fn_args):
    """TFX Trainer entry point."""
    import tensorflow_transform as tft

    entered = time.perf_counter()
    config = fn_args.custom_config
    tf.keras.utils.set_random_seed(config["seed"])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    feature_spec = tf_transform_output.transformed_feature_spec()
    size = config["image_size"]
    train = _examples(fn_args.train_files, feature_spec)
    evaluation = _examples(fn_args.eval_files, feature_spec)
    n_classes = feature_spec[LABEL_KEY].shape[0]
    backbone = _Backbone(config["backbone"], size)
    stats = {"backbone": config["backbone"], "strategy": config["strategy"], "image_size": size}
    started = time.perf_counter()
    stats["setup_seconds"] = round(started - entered, 2)
    lite_backbone = None  # the finetuned backbone is converted at export
    if config["strategy"] == "fast":
        probabilities, (kernel, bias), history, lite_backbone = _train_fast(
            backbone, train, evaluation, n_classes, config, stats)
    elif config["strategy"] == "finetune":
        model, history = _train_finetune(backbone.model(), train, evaluation, n_classes, config, fn_args, stats)
        probabilities = lambda pixels: model(pixels, training=False)  # noqa: E731
        kernel, bias = model.get_layer("head").get_layer("outputs").get_weights()
    else:
        raise ValueError(f"unknown strategy {config['strategy']!r}; choose fast or finetune")
    stats["train_seconds"] = round(time.perf_counter() - started, 2)
    stats["epochs_run"] = len(history.get("loss", []))
    stats["best_val_accuracy"] = max(history.get("val_accuracy", [0.0]))
    logging.getLogger("hotdog.progress").info(
        "        %d of at most %d epochs%s, best val_accuracy %.3f, %.0f s", stats["epochs_run"], config["epochs"],
        " (early stop)" if stats["epochs_run"] < config["epochs"] else "", stats["best_val_accuracy"],
        stats["train_seconds"])
    _export(probabilities, fn_args.serving_model_dir, size,
            config.get("classes") or [str(i) for i in range(n_classes)], stats)
    started = time.perf_counter()
    tflite.write_copy(fn_args.serving_model_dir, lite_backbone or tflite.convert(backbone.model()), kernel, bias)
    stats["tflite_seconds"] = round(time.perf_counter() - started, 2)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "training_stats.json"), "w") as handle:
        handle.write(json.dumps({**stats, "history": history}, indent=2))


class _Backbone:
    """The configured backbone, built on first use: a ``fast`` step whose feature cache already
    holds the backbone's converted copies never builds it (~0.8 s for Lite0 on 2 cores)."""

    def __init__(self, name: str, size: int):
        self.name, self.size, self._model = name, size, None

    def model(self):
        if self._model is None:
            from tfx_pipeline import models

            self._model = models.feature_extractor(self.name, self.size)
        return self._model

    def digest(self) -> str:
        """sha256 of the weights: of their file where the backbone loads them from one (Lite0
        writes its file when first built), else of the arrays."""
        from tfx_pipeline import models

        path = models.weights_file(self.name)
        if path is None:
            self.model()
            path = models.weights_file(self.name)
        return feature_cache.file_digest(path) if path else feature_cache.weights_digest(self.model().get_weights())


def _examples(file_pattern, feature_spec) -> tf.data.Dataset:
    files = tf.io.gfile.glob(file_pattern) if isinstance(file_pattern, str) else [
        f for pattern in file_pattern for f in tf.io.gfile.glob(pattern)]
    spec = {IMAGE_KEY: feature_spec[IMAGE_KEY], LABEL_KEY: feature_spec[LABEL_KEY]}
    return (tf.data.TFRecordDataset(sorted(files), compression_type="GZIP")
            .map(lambda record: tf.io.parse_single_example(record, spec), num_parallel_calls=tf.data.AUTOTUNE))


def _to_pixels(image: tf.Tensor, size: int) -> tf.Tensor:
    """Encoded bytes are decoded; already-decoded float images (the original Transform's output)
    are only brought to ``size``."""
    if image.dtype == tf.string:
        return images.decode_and_resize(image, size)
    return tf.image.resize_with_crop_or_pad(image, size, size)


def _pixels(dataset: tf.data.Dataset, size: int) -> tf.data.Dataset:
    """(pixels, label) of each example."""
    return dataset.map(lambda example: (_to_pixels(example[IMAGE_KEY], size), example[LABEL_KEY]),
                       num_parallel_calls=tf.data.AUTOTUNE)


def _head(n_features: int, n_classes: int):
    inputs = tf.keras.Input((n_features,), name="features")
    x = tf.keras.layers.Dropout(0.2)(inputs)
    outputs = tf.keras.layers.Dense(n_classes, activation="softmax", name="outputs")(x)
    return tf.keras.Model(inputs, outputs, name="head")


def _compile(model, learning_rate: float):
    """Adam, categorical cross-entropy, accuracy."""
    _keras_without_autograph()
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=[tf.keras.metrics.CategoricalAccuracy(name="accuracy")])


def _keras_without_autograph() -> None:
    """TensorFlow's AutoGraph leaves the ``keras`` package as written but converts ``tf_keras``,
    the legacy Keras that TFX runs, whose code needs no conversion: ~0.6 s of every ``fit`` on 2
    cores (13 s per model when ``train_step`` itself was converted). Adds the same rule for
    ``tf_keras``, once; where TensorFlow keeps its rules elsewhere, Keras is converted as before."""
    try:
        from tensorflow.python.autograph.core import config, config_lib
    except ImportError:
        return
    rule = config_lib.DoNotConvert("tf_keras")
    if not any(isinstance(r, config_lib.DoNotConvert) and r.matches("tf_keras") for r in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (rule, *config.CONVERSION_RULES)


def _early_stopping(patience: int):
    return tf.keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience, restore_best_weights=True)


def _features(cache: feature_cache.FeatureCache, runner: tflite.Runner, dataset: tf.data.Dataset, size: int,
              chunk: int = 1024):
    """The frozen backbone's features of ``dataset``: (features [N, F], labels [N, C], computed),
    from the cache where it has them."""
    def compute(missing):
        pixels = (tf.data.Dataset.from_tensor_slices(missing).map(lambda image: _to_pixels(image, size),
                                                                  num_parallel_calls=tf.data.AUTOTUNE)
                  .batch(64).prefetch(2))
        return np.concatenate([runner(batch.numpy()) for batch in pixels])

    xs, ys, computed = [], [], 0
    for examples in dataset.batch(chunk).as_numpy_iterator():
        features, new = cache.features(list(examples[IMAGE_KEY]), compute)
        xs.append(features)
        ys.append(examples[LABEL_KEY])
        computed += new
    return np.concatenate(xs), np.concatenate(ys).astype(np.float32), computed


def _train_fast(backbone: _Backbone, train, evaluation, n_classes, config, stats):
    """Features from the cache (new images through the backbone's TFLite copy), the head fit on
    them. Returns (pixels -> softmax on the frozen backbone graph, (kernel, bias) of the head,
    history, the TFLite backbone)."""
    size = config["image_size"]
    started = time.perf_counter()
    cache = feature_cache.FeatureCache(config["feature_cache"],
                                       feature_cache.fingerprint(config["backbone"], size, backbone.digest()))
    lite_backbone = cache.backbone(lambda: tflite.convert(backbone.model()))
    graph = cache.graph(lambda: _frozen_graph(backbone.model()))
    stats["backbone_seconds"] = round(time.perf_counter() - started, 2)  # building and converting it if not cached
    runner = tflite.Runner(lite_backbone)
    x_train, y_train, train_new = _features(cache, runner, train, size)
    x_eval, y_eval, eval_new = _features(cache, runner, evaluation, size)
    seconds = time.perf_counter() - started
    computed = train_new + eval_new
    stats.update(train_images=int(x_train.shape[0]), eval_images=int(x_eval.shape[0]),
                 feature_seconds=round(seconds, 2), features_computed=computed,
                 features_cached=int(x_train.shape[0] + x_eval.shape[0] - computed),
                 feature_images_per_second=round((x_train.shape[0] + x_eval.shape[0]) / seconds, 1))
    logging.getLogger("hotdog.progress").info(
        "        features of %d images: %d computed, %d from the cache, %.1f s", x_train.shape[0] + x_eval.shape[0],
        computed, stats["features_cached"], seconds)
    tf.keras.utils.set_random_seed(config["seed"])  # the same head whether or not the backbone was built
    head = _head(int(x_train.shape[1]), n_classes)
    _compile(head, config["learning_rate"])
    history = head.fit(x_train, y_train, batch_size=config["batch_size"], epochs=config["epochs"],
                       validation_data=(x_eval, y_eval), callbacks=[_early_stopping(config["patience"])],
                       verbose=2)
    kernel, bias = head.get_layer("outputs").get_weights()
    return (_graph_classifier(graph, kernel, bias), (kernel, bias),
            {k: [float(v) for v in vs] for k, vs in history.history.items()}, lite_backbone)


def _frozen_graph(backbone) -> bytes:
    """The backbone's inference graph with its weights as constants (a serialized GraphDef:
    ``pixels:0`` float32 [N, size, size, 3] -> ``features:0``)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec([None, *backbone.input.shape[1:]], tf.float32, name="pixels")
    call = tf.function(lambda pixels: tf.identity(backbone(pixels, training=False), name="features"),
                       input_signature=[spec], autograph=False)
    return convert_variables_to_constants_v2(call.get_concrete_function()).graph.as_graph_def().SerializeToString()


def _graph_classifier(graph: bytes, kernel: np.ndarray, bias: np.ndarray):
    """pixels -> softmax: the frozen backbone graph, then the head's Dense layer (its Dropout
    passes features through at inference)."""
    graph_def = tf.compat.v1.GraphDef.FromString(graph)
    imported = tf.compat.v1.wrap_function(lambda: tf.graph_util.import_graph_def(graph_def, name=""), [])
    features = imported.prune(imported.graph.get_tensor_by_name("pixels:0"),
                              imported.graph.get_tensor_by_name("features:0"))
    return lambda pixels: tf.nn.softmax(tf.matmul(features(pixels), kernel) + bias)


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


def _export(probabilities_of_pixels, serving_model_dir: str, size: int, classes: list[str], stats: dict) -> None:
    """Save a SavedModel of ``probabilities_of_pixels`` (float32 pixels [N, size, size, 3] ->
    softmax [N, classes]) over serialized tf.Examples: ``serving_default`` (-> ``outputs``) and
    ``classify`` (-> ``scores``, ``classes``), the class names as an asset; its seconds go into
    ``stats``. The weights are constants of the graph: the export serves, it is not trained
    further, and without variables saving skips TensorFlow's checkpoint ops for Lite0's ~500
    variables (2.0 -> 1.0 s on 2 cores)."""
    import tempfile

    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    started = time.perf_counter()
    names = tf.constant(classes)
    examples = tf.TensorSpec([None], tf.string, name="examples")

    @tf.function(input_signature=[examples], autograph=False)
    def probabilities(serialized):
        parsed = tf.io.parse_example(serialized, {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)})
        return probabilities_of_pixels(images.decode_batch(parsed[IMAGE_KEY], size))

    traced = probabilities.get_concrete_function()
    outputs = traced.structured_outputs.shape[-1]
    if len(classes) != outputs:
        raise ValueError(f"{len(classes)} class names {classes} for a model of {outputs} outputs")
    if traced.variables:
        frozen = convert_variables_to_constants_v2(traced)
        traced = lambda serialized: frozen(serialized)[0]  # noqa: E731

    @tf.function(input_signature=[examples], autograph=False)
    def serve(serialized):
        return {"outputs": traced(serialized)}

    @tf.function(input_signature=[examples], autograph=False)
    def classify(serialized):
        scores = traced(serialized)
        return {"scores": scores, "classes": tf.tile(names[tf.newaxis], [tf.shape(scores)[0], 1])}

    with tempfile.TemporaryDirectory() as scratch:
        asset = os.path.join(scratch, CLASS_NAMES_ASSET)
        with open(asset, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{name}\n" for name in classes))
        exported = tf.Module()
        exported.class_names = tf.saved_model.Asset(asset)
        tf.saved_model.save(exported, serving_model_dir, signatures={"serving_default": serve, "classify": classify})
    stats["saved_model_seconds"] = round(time.perf_counter() - started, 2)
