"""HTML reports a person reads at a glance, written from what runs record (``run.json`` in each run folder, the
batch summary beside a batch's outputs).

* :func:`run_report` — one run: the workflow's steps with their parameters, cache hit/miss and timing; for every
  audio stage (input, stems, converted vocals, mix, output) its loudness figures, waveform, spectrogram and an
  audio player; the pitch of the source vocals against the converted ones.
* :func:`batch_report` — one batch: counts, throughput, failures with their messages, and a row per file with its
  figures, a player for its output and, with ``runs=True``, a link to that file's run report.

Pages are self-contained (images and audio as data: URIs) unless ``embed=False``, which writes them into a
``<name>_files/`` folder beside the page. Nothing is fetched: a report opens offline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import Settings
from ..errors import InputError
from . import page

RUN_FILE = "run.json"


# ---- finding a run ------------------------------------------------------------------------------------------------
def find_run(settings: Settings, ref: str | os.PathLike) -> Path:
    """The run folder for a run id (or a unique prefix of one), a run folder, or a file a run produced (matched by
    content, so a renamed or moved copy is still found)."""
    runs = Path(settings.runs_path)
    p = Path(ref).expanduser()
    if p.is_dir() and (p / RUN_FILE).is_file():
        return p
    if p.is_file():
        from ..workflow.hashing import file_digest

        digest = file_digest(p)
        for run_dir in _runs_newest_first(runs):
            try:
                if json.loads((run_dir / RUN_FILE).read_text()).get("output_digest") == digest:
                    return run_dir
            except (OSError, ValueError):
                continue
        raise InputError(
            f"No run recorded in {runs} made {p.name}.",
            hint="Give the run id `singer cover --json` printed, or a file singer wrote on this machine.",
        )
    name = str(ref)
    if runs.is_dir() and name and "/" not in name:
        hits = [d for d in runs.iterdir() if d.name.startswith(name) and (d / RUN_FILE).is_file()]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InputError(f"Run id '{name}' matches {len(hits)} runs.", hint="Give more of the id.")
    raise InputError(
        f"No run, run folder or output file named '{name}'.",
        hint=f"Run ids are the folder names under {runs}; or pass the output file itself.",
    )


def _runs_newest_first(runs: Path) -> list[Path]:
    if not runs.is_dir():
        return []
    # run ids start with the second they began (YYYYMMDD-HHMMSS) and end in a random suffix: two runs begun in the
    # same second are told apart by when their record was written, not by the suffix
    return sorted(
        (d for d in runs.iterdir() if (d / RUN_FILE).is_file()),
        key=lambda d: (d.name[:15], (d / RUN_FILE).stat().st_mtime_ns, d.name),
        reverse=True,
    )


def load_run(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / RUN_FILE).read_text())
    except (OSError, ValueError) as e:
        raise InputError(
            f"{run_dir} has no readable {RUN_FILE}.",
            hint="It was written by an older singer or removed; run the job again.",
        ) from e


def run_report(
    settings: Settings, ref: str | os.PathLike, out: str | os.PathLike | None = None, embed: bool = True
) -> Path:
    """Write the HTML report of a run (``ref`` as :func:`find_run` takes it); returns the page's path (default
    ``<run folder>/report.html``)."""
    from .run_page import render

    run_dir = find_run(settings, ref)
    target = Path(out) if out else run_dir / "report.html"
    return _write(target, lambda assets: render(load_run(run_dir), assets), embed)


def batch_report(
    settings: Settings,
    folder: str | os.PathLike,
    out: str | os.PathLike | None = None,
    runs: bool = False,
    embed: bool = True,
) -> Path:
    """Write ``<batch out folder>/batch-report.html`` from its ``batch-summary.json``; with ``runs``, also every
    finished file's run report under ``reports/`` (linked from its row)."""
    folder = Path(folder)
    try:
        summary = json.loads((folder / "batch-summary.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(
            f"{folder} has no batch-summary.json.", hint="Give the --out folder of a finished `singer batch`."
        ) from e
    target = Path(out) if out else folder / "batch-report.html"
    links = {}
    if runs:
        for item in summary.get("items", []):
            run_dir = Path(settings.runs_path) / item.get("run_id", "")
            if item.get("run_id") and (run_dir / RUN_FILE).is_file():
                page_path = target.parent / "reports" / (item["rel"] + ".html")
                page_path.parent.mkdir(parents=True, exist_ok=True)
                run_report(settings, run_dir, page_path, embed)
                links[item["rel"]] = os.path.relpath(page_path, target.parent)
    return _write(target, lambda assets: batch_html(settings, summary, target.parent, links), embed)


def batch_html(
    settings: Settings,
    summary: dict,
    base: Path,
    links: dict[str, str] | None = None,
    files: dict[str, Path] | None = None,
    assets: page.Assets | None = None,
) -> str:
    """The batch page as a string. Players link each output relative to ``base`` (where the page will lie); with
    ``assets`` and ``files`` (rel -> output file) the outputs are put inside the page instead (the HTTP service's
    report, which a browser opens without the files beside it)."""
    from .batch_page import render

    records = {}
    for item in summary.get("items", []):
        run_dir = Path(settings.runs_path) / item.get("run_id", "")
        if item.get("run_id") and (run_dir / RUN_FILE).is_file():
            records[item["rel"]] = load_run(run_dir)
    return render(summary, records, links or {}, Path(base), files, assets)


def _write(target: Path, build, embed: bool) -> Path:
    """Build the page and write it atomically (a half-written report never replaces a whole one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    html = build(page.Assets(target, embed))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, target)
    return target


__all__ = ["batch_report", "find_run", "load_run", "run_report"]
