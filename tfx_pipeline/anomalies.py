"""Stop the pipeline before Transform when the data does not match its schema.

``AnomaliesGate`` reads ExampleValidator's anomalies (against the schema inferred from the
same data) and, when the work folder has a frozen schema (``frozen_schema``: a schema.pbtxt
path, read when the gate runs), checks every split's statistics against it with TFDV, as
ExampleValidator does. Any anomaly fails the run with each one named (split, feature,
description), so such data never reaches Transform, the Trainer or the registry. The path
is a parameter, not an input, so the pipeline has the same components before and after the
schema is frozen (an Airflow DAG or a compiled Vertex spec does not change under a run).
"""
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies, ExampleStatistics


class DataAnomalies(ValueError):
    """The examples do not match the schema; the message names every anomaly."""


def describe(split: str, found) -> list[str]:
    """One line per anomaly of a tensorflow_metadata Anomalies proto."""
    lines = [f"{split}: feature {feature!r}: {info.short_description} ({info.description})"
             for feature, info in sorted(found.anomaly_info.items())]
    if found.HasField("dataset_anomaly_info"):
        info = found.dataset_anomaly_info
        lines.append(f"{split}: {info.short_description} ({info.description})")
    return lines


def anomaly_lines(anomalies_uri: str, split_names: list[str]) -> list[str]:
    """The anomalies recorded in an ExampleAnomalies artifact, one line each."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    lines = []
    for split in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split}", "SchemaDiff.pb")
        if tf.io.gfile.exists(path):
            lines += describe(split, anomalies_pb2.Anomalies.FromString(tf.io.gfile.GFile(path, "rb").read()))
    return lines


def frozen_schema_lines(statistics, schema_path: str) -> list[str]:
    """Each split's statistics (an ExampleStatistics artifact) checked against ``schema_path``."""
    import tensorflow_data_validation as tfdv
    from tfx.components.statistics_gen import stats_artifact_utils

    schema = tfdv.load_schema_text(schema_path)
    lines = []
    for split in artifact_utils.decode_split_names(statistics.split_names):
        stats = stats_artifact_utils.load_statistics(statistics, split).proto()
        lines += describe(split, tfdv.validate_statistics(stats, schema))
    return lines


@component
def AnomaliesGate(anomalies: InputArtifact[ExampleAnomalies], statistics: InputArtifact[ExampleStatistics],
                  frozen_schema: Parameter[str] = ""):
    """Raise DataAnomalies when ExampleValidator or the frozen schema finds any anomaly."""
    import tensorflow as tf

    lines = anomaly_lines(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    if frozen_schema and tf.io.gfile.exists(frozen_schema):
        lines += [f"{line} [frozen schema {frozen_schema}]" for line in frozen_schema_lines(statistics, frozen_schema)]
    if lines:
        raise DataAnomalies("the examples do not match the schema: " + "; ".join(lines))
