"""The model server's web pages (Gradio, as the original project's app; offline: no CDN fonts,
analytics off):

    /         choose or drop a photo: the probabilities as bars, the model version and its accuracy
    /report   the latest experiment report (verdict table and chart) and the registry's versions
              with their lineage, accuracy and which one this server serves
"""
from __future__ import annotations

import functools
import json
import os

from tasks import fs, tfrecords
from tasks.errors import HotdogInputError
from tasks.serving import registry
from tasks.serving.models import ModelManager, NotServed

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
UPLOAD_MAX_AGE_S = 3600  # photos uploaded to the page are deleted after an hour (checked hourly)


def model_line(manager: ModelManager) -> str:
    """The serving version, its accuracy and classes, as one Markdown line."""
    try:
        servable = manager.servable()
    except NotServed as err:
        return f"**No model yet.** {err}"
    accuracy = f"{servable.accuracy:.1%}" if servable.accuracy is not None else "unknown"
    pushed = registry.pushed_at(servable.version)
    return (f"Model **{manager.name}**, version **{servable.version}** (pushed {pushed}), "
            f"eval accuracy **{accuracy}**; classes: {', '.join(servable.classes)}")


async def classify(manager: ModelManager, path: str | None):
    """A photo's preview, its probabilities for the bars, a table of them, and the version line."""
    if not path:
        return None, None, "", model_line(manager)
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        rows, servable = await manager.predict([tfrecords.image_example(data)])
    except (HotdogInputError, NotServed) as err:
        return None, None, f"**Cannot classify {os.path.basename(path)}:** {err}", model_line(manager)
    probabilities = {c: float(p) for c, p in zip(servable.classes, rows[0])}
    table = "\n".join(["| class | probability |", "|---|---|",
                       *(f"| {c} | {p:.6f} |" for c, p in probabilities.items())])
    scored = f"This photo was scored by version **{servable.version}**."
    return path, probabilities, table, f"{model_line(manager)}\n\n{scored}"


def report_markdown(report_dir: str) -> str:
    summary_path = fs.join(report_dir, "summary.json")
    if not fs.exists(summary_path):
        return f"No experiment report in `{report_dir}` yet: `hotdog run` writes one."
    from tasks import verdict

    return verdict.report(json.loads(fs.read_bytes(summary_path)), chart_path=None)


def chart_image(report_dir: str):
    path = fs.join(report_dir, "verdict.png")
    if not fs.exists(path):
        return None
    from io import BytesIO

    from PIL import Image

    return Image.open(BytesIO(fs.read_bytes(path)))


def versions_table(manager: ModelManager) -> list[list]:
    current = manager.current.version if manager.current else None
    return [[row["version"], row["pushed_at"], ", ".join(row["data_sets"] or []),
             "" if row["accuracy"] is None else round(row["accuracy"], 4), row["blessed_by"] or "",
             "yes" if row["version"] == current else ("elsewhere" if row["served"] else ""),
             "yes" if row["pinned"] else ""]
            for row in reversed(registry.describe(manager.workdir))]


def create_pages(manager: ModelManager, report_dir: str):
    """The Gradio Blocks of both pages (mount with :func:`mount`)."""
    import gradio as gr

    # every event skips Gradio's queue: its bookkeeping needs pandas >= 2, and TFX pins pandas 1.5
    with gr.Blocks(title=f"hotdog-flows: {manager.name}", analytics_enabled=False,
                   delete_cache=(UPLOAD_MAX_AGE_S, UPLOAD_MAX_AGE_S)) as pages:
        gr.Markdown("## Try a photo")
        about = gr.Markdown(elem_id="model-line")
        with gr.Row():
            photo = gr.File(label="Photo (choose or drop)", file_types=["image"], type="filepath", elem_id="photo")
            preview = gr.Image(label="Preview", interactive=False, elem_id="preview")
            bars = gr.Label(label="Probabilities", elem_id="probability-bars")
        table = gr.Markdown(elem_id="probability-table")
        shown = [preview, bars, table, about]
        pages.load(lambda: model_line(manager), None, about, queue=False)
        photo.upload(functools.partial(classify, manager), photo, shown, queue=False)
        photo.clear(functools.partial(classify, manager, None), None, shown, queue=False)
    with pages.route("Report", "/report") as report_page:
        report = gr.Markdown(elem_id="report")
        chart = gr.Image(label="verdict", interactive=False, elem_id="report-chart")
        versions = gr.Dataframe(label="registry versions", interactive=False, elem_id="versions",
                                headers=["version", "pushed at", "data sets", "accuracy", "blessed by", "served here",
                                         "pinned"])
        report_page.load(lambda: (f"{model_line(manager)}\n\n" + report_markdown(report_dir), chart_image(report_dir),
                                  versions_table(manager)), None, [report, chart, versions], queue=False)
    return pages


def mount(app, manager: ModelManager, report_dir: str, max_bytes: int):
    """``app`` with the pages at / (after the app's own routes, which keep precedence)."""
    import gradio as gr

    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # no web fonts: it works offline
    return gr.mount_gradio_app(app, create_pages(manager, report_dir), path="/", theme=theme,
                               max_file_size=max_bytes, footer_links=[], ssr_mode=False)
