"""Batch routes: ``POST /v1/batches`` runs what ``singer batch FOLDER`` runs, as jobs on the service's queue.

A batch is uploads (``files``, several parts) or a folder on the server (``folder``, only inside
``SINGER_BATCH_ROOTS``). Every file becomes one job of priority 1 (interactive jobs go first) whose output lands
in ``<home>/batches/<id>/out/`` mirroring the input tree; ``GET /v1/batches/{id}`` follows it and
``GET /v1/batches/{id}/result`` is the zip of the outputs with ``batch-summary.json`` / ``.csv``. A bad file does
not refuse the batch: it becomes a failed item with its user message, as in the CLI.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.background import BackgroundTask

from ..batch import find_inputs, plan, shared_request, unique_name
from ..errors import InputError, UsageError, error_dict
from ..jobs.batches import BatchItem, new_id, status, write_zip
from ..jobs.lifecycle import batch_ended
from ..jobs.paths import batch_dir, batch_out, batch_uploads_dir
from ..keys import parse_key
from .deps import ERRORS, MAX_ID_LENGTH, Caller, Service, ServiceDep, http_error, too_many_batches
from .links import batch_result_url, batch_status, batch_url
from .routes import check_callback
from .schemas import CALLBACK_MAX, FOLDER_MAX, KEY_TEXT_MAX, VOICE_MAX, BatchAccepted, BatchOut, ErrorOut, Format
from .uploads import safe_name, save_upload

router = APIRouter()
SHOWN_MAX = 200  # characters of a client's folder name repeated in a message


def _check_count(service: Service, n: int) -> None:
    limit = service.settings.max_batch_files
    if n > limit:
        raise UsageError(
            f"The batch has {n} files; the limit is {limit} (SINGER_MAX_BATCH_FILES).",
            hint="Split it into several batches.",
        )


def _forbidden(message: str, hint: str) -> HTTPException:
    return http_error(403, "forbidden", message, hint)


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long for the file system
        return False


def _folder(service: Service, folder: str) -> Path:
    """The real (resolved) folder ``folder`` names, if it lies inside the batch roots (403 otherwise). A relative
    folder is looked for under each root. Links and .. are resolved before the check, so neither escapes."""
    roots = [r.resolve() for r in service.settings.batch_root_paths]
    if not roots:
        raise _forbidden(
            "Folder batches are turned off on this service (SINGER_BATCH_ROOTS is empty).",
            "Upload the files instead, or set SINGER_BATCH_ROOTS to the folders batches may read.",
        )
    refused = _forbidden(
        f"{folder[:SHOWN_MAX]} is not inside a folder batches may read (SINGER_BATCH_ROOTS).",
        "Name a folder under one of the batch roots, or upload the files.",
    )
    if "\0" in folder:
        raise refused
    raw = Path(folder)
    found = []
    for cand in [raw] if raw.is_absolute() else [root / raw for root in roots]:
        try:
            real = cand.resolve()
        except (OSError, RuntimeError):  # a link loop, a name too long
            continue
        if _inside(real, roots):
            found.append(real)
    if not found:
        raise refused
    folder_found = next((f for f in found if _is_dir(f)), None)
    if folder_found is None:
        raise UsageError(f"No folder {folder[:SHOWN_MAX]} in the batch roots.", hint="Check the folder's name.")
    return folder_found


def _folder_items(service: Service, folder: str, out: Path, base: dict, fmt: str | None) -> list[BatchItem]:
    src = _folder(service, folder)
    roots = [r.resolve() for r in service.settings.batch_root_paths]
    inputs = find_inputs(src, Path(service.settings.home) / "batches")
    if not inputs:
        raise UsageError(
            f"No audio or video files in {folder[:SHOWN_MAX]}.",
            hint="The folder (and its sub-folders) must hold voice notes or songs.",
        )
    _check_count(service, len(inputs))
    kind = _kind(base["workflow"])
    planned = plan([path.relative_to(src).as_posix() for path in inputs], fmt, base["workflow"])
    items = []
    for path, p in zip(inputs, planned, strict=True):
        real, rel = path.resolve(), p.rel
        request = {**base, "input": str(real), "format": p.format, "out": str(out / p.out)}
        error = (
            None
            if _inside(real, roots)
            else {  # a link to a file outside the roots is not read
                "error": "forbidden",
                "message": f"{rel} links outside the folders batches may read; it was not read.",
                "hint": "Copy the file into the folder instead of linking it.",
            }
        )
        items.append(BatchItem(rel, kind, request, error))
    return items


def _upload_items(
    service: Service, files: list[UploadFile], batch_id: str, out: Path, base: dict, fmt: str | None
) -> list[BatchItem]:
    """Each upload stored and checked as POST /v1/conversions does; one that fails a check is a failed item."""
    _check_count(service, len(files))
    folder = batch_uploads_dir(service.settings, batch_id)
    kind = _kind(base["workflow"])
    names: set[str] = set()
    planned = plan([unique_name(names, safe_name(file.filename)) for file in files], fmt, base["workflow"])
    items = []
    for file, p in zip(files, planned, strict=True):
        request, rel = {**base, "input": "", "format": p.format, "out": str(out / p.out)}, p.rel
        error: dict | None = None
        try:
            request["input"] = str(save_upload(service.settings, file, folder, label=rel))
        except HTTPException as e:  # over the size limit
            error = e.detail if isinstance(e.detail, dict) else {"error": "too_large", "message": str(e.detail)}
        except InputError as e:  # not audio, too long (a missing ffprobe refuses the whole batch: 503)
            error = error_dict(e)
        items.append(BatchItem(rel, kind, request, error))
    return items


def _kind(workflow: str) -> str:
    """The job kind that runs a workflow's files."""
    return "convert" if workflow == "voice_note" else "cover"


@router.post(
    "/v1/batches",
    status_code=202,
    response_model=BatchAccepted,
    responses={**ERRORS, 403: {"model": ErrorOut}},
    tags=["batches"],
)
def submit_batch(
    service: ServiceDep,
    owner: Caller,
    files: Annotated[
        list[UploadFile] | None, File(description="The voice notes (or songs): one part per file.")
    ] = None,
    folder: Annotated[
        str | None,
        Form(
            max_length=FOLDER_MAX,
            description="Instead of files: a folder on the server, "
            "inside SINGER_BATCH_ROOTS (relative names are looked for there).",
        ),
    ] = None,
    voice: Annotated[str | None, Form(max_length=VOICE_MAX)] = None,
    workflow: Annotated[Literal["voice_note", "cover"], Form()] = "voice_note",
    format: Annotated[
        Format | None,
        Form(
            description="Default: each input's own format where singer writes it, else ogg (voice_note) or mp3 (cover)."
        ),
    ] = None,
    key: Annotated[str | None, Form(max_length=KEY_TEXT_MAX, description="Semitones (-24..24) or auto.")] = None,
    trim: Annotated[
        bool | None, Form(description="voice_note: cut silence before/after the voice (default on).")
    ] = None,
    denoise: Annotated[bool | None, Form(description="voice_note: lower steady background noise first.")] = None,
    callback_url: Annotated[
        str | None,
        Form(
            max_length=CALLBACK_MAX,
            description="Gets a signed POST (event batch.done) once, when every file has ended.",
        ),
    ] = None,
) -> BatchAccepted:
    """Convert many files in one request, as ``singer batch`` does: each file is a job (run after interactive
    jobs); follow the batch and fetch the zip of its outputs. Bad files become failed items."""
    settings, store = service.settings, service.store
    check_callback(settings, callback_url)
    base = shared_request(workflow, voice, parse_key(key, "key"), trim, denoise)  # the one key rule
    _check_source(files, folder)
    if voice:
        service.singer.voices.get(voice)  # a wrong voice fails the request now, not every file later
    with service.admit(
        owner, "batch", store.batches.active(owner), settings.max_batches_per_key, too_many_batches(service)
    ):  # a slot held before copying and probing any upload
        batch, batch_id = _create(service, owner, files, folder, base, format, callback_url)
    state = status(batch, store.batches.jobs(batch_id))["state"]
    return BatchAccepted(
        batch_id=batch_id,
        state=state,
        total=batch.total,
        status_url=batch_url(batch_id),
        result_url=batch_result_url(batch_id),
    )


def _check_source(files: list[UploadFile] | None, folder: str | None) -> None:
    if files and folder:
        raise UsageError("Give either files or a folder, not both.", hint="Send one batch for each.")
    if not files and not folder:
        raise UsageError(
            "The batch is empty: no files were uploaded and no folder was named.",
            hint="Send the files as several 'files' parts, or name a server folder with 'folder'.",
        )


def _create(service: Service, owner: str, files, folder: str | None, base: dict, format, callback_url):
    """Store the batch's uploads (or list its folder) and file it with one job per input; nothing stays on refusal."""
    settings, store = service.settings, service.store
    batch_id = new_id()
    out = batch_out(settings, batch_id)
    try:
        items = (
            _folder_items(service, folder, out, base, format)
            if folder
            else _upload_items(service, files or [], batch_id, out, base, format)
        )
        batch = store.batches.create(
            batch_id,
            owner,
            {**base, "format": format, "folder": folder},
            out,
            items,
            callback_url,
            max_active=settings.max_batches_per_key,
        )
        if batch is None:
            raise too_many_batches(service)
    except BaseException:  # refused: nothing of it stays
        shutil.rmtree(batch_uploads_dir(settings, batch_id), ignore_errors=True)
        raise
    batch_ended(settings, store, batch_id, service.views)  # every file refused at submission: it has ended already
    return batch, batch_id


def get_batch(service: Service, owner: str, batch_id: str):
    """The caller's batch, or 404 (someone else's batch looks exactly like a missing one)."""
    batch = service.store.batches.get(batch_id, owner=owner) if len(batch_id) <= MAX_ID_LENGTH else None
    if batch is None:
        raise http_error(
            404,
            "not_found",
            f"No batch {batch_id[:MAX_ID_LENGTH]} for this API key.",
            "Use the batch_id your submission returned.",
        )
    return batch


@router.get("/v1/batches/{batch_id}", response_model=BatchOut, responses=ERRORS, tags=["batches"])
def get_batch_status(batch_id: str, service: ServiceDep, owner: Caller) -> BatchOut:
    """State (done when every file's job has ended), counts, progress 0..1 and one item per file with its job,
    its error (a user message) or its result's link."""
    batch = get_batch(service, owner, batch_id)
    return BatchOut(**batch_status(batch, service.store.batches.jobs(batch.id)))


def _finished(service: Service, owner: str, batch_id: str):
    batch = get_batch(service, owner, batch_id)
    jobs = service.store.batches.jobs(batch.id)
    state = status(batch, jobs)["state"]
    if state != "done":
        raise http_error(
            409, "not_ready", f"Batch {batch.id} is {state}.", "Wait for state 'done' (GET /v1/batches/{id})."
        )
    return batch, jobs


@router.get(
    "/v1/batches/{batch_id}/report",
    tags=["batches"],
    response_class=Response,
    responses={
        **ERRORS,
        409: {"model": ErrorOut, "content": {"application/json": {}}},
        200: {"content": {"text/html": {"schema": {"type": "string"}}}},
    },
)
def batch_report(batch_id: str, service: ServiceDep, owner: Caller) -> HTMLResponse:
    """The batch's HTML report (counts, failures with their messages, a row per file with its figures and a
    player), self-contained: the outputs are inside the page."""
    from ..jobs.batches import summary
    from ..report import batch_html
    from ..report.page import Assets

    batch, jobs = _finished(service, owner, batch_id)
    info = summary(batch, jobs)
    files = {j.request.get("rel", ""): Path(j.result["output"]) for j in jobs if j.state == "done" and j.result}
    html = batch_html(service.settings, info, Path("."), files=files, assets=Assets(Path("report.html")))
    return HTMLResponse(html)


@router.get(
    "/v1/batches/{batch_id}/result",
    responses={**ERRORS, 409: {"model": ErrorOut}},
    tags=["batches"],
    response_class=FileResponse,
    response_description="application/zip",
)
def batch_result(batch_id: str, service: ServiceDep, owner: Caller):
    """A zip of the finished outputs mirroring the input tree, with batch-summary.json and batch-summary.csv as
    ``singer batch`` writes them and batch-report.html."""
    batch, jobs = _finished(service, owner, batch_id)
    folder = batch_dir(service.settings, batch.id)
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".result-", suffix=".zip", dir=folder)
    os.close(fd)
    try:
        write_zip(batch, jobs, Path(name), service.settings)
    except BaseException:
        os.unlink(name)
        raise
    return FileResponse(
        name, media_type="application/zip", filename=f"batch-{batch.id}.zip", background=BackgroundTask(os.unlink, name)
    )
