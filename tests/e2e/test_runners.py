"""Other runners give byte-identical output: DirectRunner multi_processing and Beam's DaskRunner
on a real local dask.distributed cluster of several worker processes."""
import os

import pytest

from tasks import dataset_config, datasets, ingest, runners, settings
from tests.e2e.test_gcs import local_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_cluster():
    from distributed import LocalCluster

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [settings.PROJECT_ROOT, os.environ.get("PYTHONPATH")]))
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    try:
        yield cluster
    finally:
        from distributed.client import _global_clients

        for client in list(_global_clients.values()):  # the DaskRunner leaves its Client open
            client.close()
        cluster.close()


def ingest_and_build(tree, out, options):
    ingest.run_ingest(tree, os.path.join(out, "ingested"), max_per_category=3, options=options)
    specs = dataset_config.select(dataset_config.load_config(), ["baseline"])
    datasets.build_from_ingested(os.path.join(out, "ingested"), specs, os.path.join(out, "sets"), shards=2,
                                 options=options)
    return local_bytes(out)


def test_dask_runner_matches_direct_runner(dask_cluster, tree, tmp_path):
    from distributed import Client

    direct = ingest_and_build(tree, str(tmp_path / "direct"), runners.pipeline_options())
    dask = ingest_and_build(tree, str(tmp_path / "dask"),
                            runners.pipeline_options("dask", dask_address=dask_cluster.scheduler_address))
    assert sorted(dask) == sorted(direct)
    for name in direct:
        if not name.endswith(("dataset.json", "dataset.md")):  # cards name their input folder
            assert dask[name] == direct[name], name
    with Client(dask_cluster.scheduler_address) as client:
        assert len(client.scheduler_info()["workers"]) == 2


def test_multi_processing_matches_in_process(tree, tmp_path):
    single = ingest_and_build(tree, str(tmp_path / "one"), runners.pipeline_options())
    multi = ingest_and_build(tree, str(tmp_path / "two"), runners.pipeline_options("direct", workers=2))
    for name in single:
        if not name.endswith(("dataset.json", "dataset.md")):
            assert multi[name] == single[name], name


@pytest.mark.parametrize("kwargs, message", [
    ({"runner": "dask"}, "needs --dask-address"),
    ({"runner": "dataflow", "project": "p"}, "needs --region, --temp-location"),
    ({"runner": "dataflow", "project": "p", "region": "r", "temp_location": "/tmp"}, "must be a gs:// URI"),
    ({"runner": "direct", "workers": 0}, "--workers must be >= 1"),
])
def test_runner_options_are_validated(kwargs, message):
    from tasks.errors import HotdogInputError

    with pytest.raises(HotdogInputError, match=message):
        runners.pipeline_options(**kwargs)


def test_dataflow_options_are_complete():
    options = runners.pipeline_options("dataflow", 4, project="p", region="europe-west1",
                                       temp_location="gs://b/tmp").get_all_options()
    assert (options["runner"], options["project"], options["region"], options["temp_location"],
            options["num_workers"]) == ("DataflowRunner", "p", "europe-west1", "gs://b/tmp", 4)
