"""The data root's layout, shared by the pipeline (what ExampleGen reads) and the code that
writes it (``tasks.eval_split``): one folder per data set, its files named by split."""

SPLIT_PATTERNS = {"train": "*/train-*.tfrecord*", "eval": "*/eval-*.tfrecord*"}
