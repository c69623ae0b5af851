"""Prefect flow ``add-data``: TFRecord files into a work folder's data root, each one checked
record by record (:func:`tasks.uploads.stage`), under the work folder's lock."""
from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.common import forward_task_logs, report, retry_unless_input_error
from tasks import training, uploads, work_lock
from tasks.errors import HotdogInputError


@task(name="add-file", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_input_error)
def add_file(uri: str, data_root: str, generation: str | None = None) -> str:
    """Stage one file; its destination in the data root."""
    with forward_task_logs():
        return uploads.stage(uri, data_root, generation)


@flow(name="add-data")
def add_data(uris: list[str], workdir: str, fail_if_busy: bool = False) -> list[dict]:
    """Add each of ``uris`` (paths or gs://) to ``workdir``'s data root. Returns one entry per URI,
    in order: ``{"uri", "staged": destination}`` or ``{"uri", "refused": reason}`` (quarantined)."""
    data_root = training.paths(workdir)["data_root"]
    accounting = []
    with work_lock.held(workdir, "add-data", wait=not fail_if_busy):
        for uri in uris:
            state = add_file(uri, data_root, return_state=True)
            try:
                accounting.append({"uri": uri, "staged": state.result()})
            except HotdogInputError as err:
                accounting.append({"uri": uri, "refused": str(err)})
    refused = [entry for entry in accounting if "refused" in entry]
    report("add-data: %d of %d file(s) added to %s, %d refused", len(accounting) - len(refused), len(accounting),
           data_root, len(refused))
    rows = "\n".join(f"| `{e['uri']}` | {e.get('staged') or 'refused: ' + e['refused']} |" for e in accounting)
    create_markdown_artifact(key="add-data", markdown=f"# Data added to `{data_root}`\n\n| file | outcome |\n"
                                                      f"|---|---|\n{rows}\n")
    return accounting
