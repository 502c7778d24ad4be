"""Routes. Thin: each validates, checks the caller, and calls the job store or the library facade."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, UploadFile
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse

from ..config import Settings
from ..errors import InputError, NetworkUnavailable
from ..jobs.paths import uploads_dir
from ..keys import parse_key
from .deps import ERRORS, MAX_ID_LENGTH, Caller, Service, ServiceDep, http_error, too_many_jobs
from .links import job_url, linked_event, public_job
from .schemas import (
    CALLBACK_MAX,
    KEY_TEXT_MAX,
    PICK_MAX,
    QUERY_MAX,
    VOICE_MAX,
    CandidateOut,
    CoverIn,
    ErrorOut,
    Format,
    JobAccepted,
    JobOut,
    SearchOut,
    VoiceOut,
)
from .uploads import save_upload

router = APIRouter()
SEARCH_DEFAULT = 5  # candidates a search answers unless told
STREAM_POLL_S = 0.5  # how often an event stream looks for new events (and sends a keep-alive)
RECONNECT_MS = 1000  # the retry an event stream tells its client when its lifetime ends
RETRY_STREAMS_S = 5  # Retry-After when a key has its most event streams open
EVENT_ID_DIGITS = 18  # a Last-Event-ID longer than this is not one of ours


def check_callback(settings: Settings, url: str | None) -> None:
    """A webhook target is accepted only when calls to it are signed (SINGER_WEBHOOK_SECRET) and it passes the
    URL policy (checked again at every delivery, connection by connection)."""
    if not url:
        return
    if not settings.webhook_secret:
        raise InputError(
            "callback_url is not accepted: this service has no webhook secret to sign calls with.",
            hint="Poll GET /v1/jobs/{id} or its events instead, or ask the operator to set SINGER_WEBHOOK_SECRET.",
        )
    door_url_check(url, settings)


def door_url_check(url: str, settings: Settings) -> None:
    """The URL policy at the door (the worker checks every connection again). A host name that does not resolve
    now may later: the job (or the webhook delivery) says so if it still does not; that is no reason to refuse."""
    from ..engines.sources.urls import check_url

    try:
        check_url(url, settings)
    except NetworkUnavailable:
        pass


def accept_job(service: Service, owner: str, kind: str, request: dict, callback_url: str | None) -> JobAccepted:
    check_callback(service.settings, callback_url)
    job = service.store.submit(owner, kind, request, callback_url, max_active=service.settings.max_jobs_per_key)
    if job is None:
        raise too_many_jobs(service)
    return JobAccepted(job_id=job.id, state=job.state, status_url=job_url(job.id))


def _query(text: str, settings: Settings) -> str:
    """A search text or an http(s) URL; anything written like a path is refused here, before a job exists (the
    job's worker applies the same rule again). Nothing here touches the file system."""
    from ..engines.sources.inputs import classify

    found = classify(text, local=False)
    if found.kind == "url":
        door_url_check(found.url, settings)
    return found.url if found.kind == "url" else found.text


@router.post("/v1/covers", status_code=202, response_model=JobAccepted, responses=ERRORS, tags=["jobs"])
def submit_cover(body: CoverIn, service: ServiceDep, owner: Caller) -> JobAccepted:
    """Make a cover of a song (search text or URL) in a voice. Answers at once; follow the job."""
    if body.voice:
        service.singer.voices.get(body.voice)  # a wrong voice is a 404 now, not a failed job later
    request = {
        "input": _query(body.query, service.settings),
        "voice": body.voice,
        "format": body.format,
        "key": body.key,
        "pick": body.pick,
    }
    return accept_job(service, owner, "cover", {k: v for k, v in request.items() if v is not None}, body.callback_url)


@router.post(
    "/v1/conversions",
    status_code=202,
    response_model=JobAccepted,
    responses={**ERRORS, 413: {"model": ErrorOut}},
    tags=["jobs"],
)
def submit_conversion(
    service: ServiceDep,
    owner: Caller,
    file: Annotated[UploadFile, File(description="Voice note")],
    voice: Annotated[str | None, Form(max_length=VOICE_MAX)] = None,
    format: Annotated[Format, Form()] = "ogg",
    key: Annotated[str | None, Form(max_length=KEY_TEXT_MAX, description="Semitones (-24..24) or auto.")] = None,
    trim: Annotated[bool | None, Form(description="Cut silence before/after the voice (default on).")] = None,
    denoise: Annotated[bool | None, Form(description="Lower steady background noise first.")] = None,
    callback_url: Annotated[str | None, Form(max_length=CALLBACK_MAX)] = None,
) -> JobAccepted:
    """Convert an uploaded voice note (any audio or video ffmpeg reads, by content) into a voice."""
    key_value = parse_key(key, "key")  # the one key rule, before the upload is copied
    if voice:
        service.singer.voices.get(voice)  # a wrong voice is a 404 now, not a failed job later
    with service.admit(
        owner, "job", service.store.active(owner), service.settings.max_jobs_per_key, too_many_jobs(service)
    ):  # a slot held before copying and probing the upload
        path = save_upload(service.settings, file, uploads_dir(service.settings))
        try:
            request = {
                "input": str(path),
                "voice": voice,
                "format": format,
                "key": key_value,
                "trim": trim,
                "denoise": denoise,
            }
            return accept_job(
                service, owner, "convert", {k: v for k, v in request.items() if v is not None}, callback_url
            )
        except BaseException:  # refused: the upload goes (an accepted one goes when its job ends)
            path.unlink(missing_ok=True)
            raise


@router.get("/v1/search", response_model=SearchOut, responses=ERRORS, tags=["songs"])
def search(
    service: ServiceDep,
    owner: Caller,
    q: Annotated[str, Query(min_length=1, max_length=QUERY_MAX)],
    limit: Annotated[int, Query(ge=1, le=PICK_MAX)] = SEARCH_DEFAULT,
) -> SearchOut:
    """Numbered candidates for a search text; submit a cover with ``pick`` to take one."""
    found = service.singer.search(_query(q, service.settings), limit, library=service.settings.http_library)
    return SearchOut(
        query=q,
        candidates=[
            CandidateOut(n=i, title=c.title, artist=c.artist, duration=c.duration, source=c.source, url=c.url)
            for i, c in enumerate(found, 1)
        ],
    )


def _job(service: Service, owner: str, job_id: str):
    job = service.store.get(job_id, owner=owner) if len(job_id) <= MAX_ID_LENGTH else None
    if job is None:  # someone else's job looks exactly like a missing one
        raise http_error(
            404,
            "not_found",
            f"No job {job_id[:MAX_ID_LENGTH]} for this API key.",
            "Use the job_id your submission returned.",
        )
    return job


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=ERRORS, tags=["jobs"])
async def get_job(job_id: str, service: ServiceDep, owner: Caller) -> JobOut:
    """State, current step, progress 0..1, the error (a user message) or the result's link."""
    return JobOut(**public_job(_job(service, owner, job_id)))


@router.get(
    "/v1/jobs/{job_id}/events",
    responses=ERRORS,
    tags=["jobs"],
    response_class=StreamingResponse,
    response_description="text/event-stream",
)
async def job_events(
    job_id: str, service: ServiceDep, owner: Caller, last_event_id: Annotated[str | None, Header()] = None
):
    """Server-Sent Events: queued, running, step_start / step_progress / step_end, then done or failed.
    Reconnect with ``Last-Event-ID`` to resume. A key may hold ``SINGER_MAX_STREAMS_PER_KEY`` streams open at once;
    a stream ends after ``SINGER_STREAM_MAX_SECONDS`` (reconnect with the last id to go on)."""
    _job(service, owner, job_id)
    after = _event_id(last_event_id)
    settings = service.settings
    if service.streams[owner] >= settings.max_streams_per_key:
        raise http_error(
            429,
            "too_many_streams",
            f"This API key already has {settings.max_streams_per_key} event streams open.",
            "Close one, or poll GET /v1/jobs/{id}.",
            RETRY_STREAMS_S,
        )
    service.streams[owner] += 1
    deadline = time.monotonic() + settings.stream_max_seconds

    async def stream():
        nonlocal after
        try:
            while time.monotonic() < deadline:
                events = service.store.events(job_id, after)
                for seq, type_, data in events:
                    after = seq
                    yield f"id: {seq}\nevent: {type_}\ndata: {json.dumps(linked_event(job_id, data))}\n\n"
                    if type_ in ("done", "failed"):
                        return
                if not events and _job(service, owner, job_id).finished:
                    return  # resumed past the end of a finished job: nothing more will come
                yield ": keep-alive\n\n"
                await asyncio.sleep(STREAM_POLL_S)
            yield f"retry: {RECONNECT_MS}\n: stream lifetime reached; reconnect with Last-Event-ID\n\n"
        finally:
            service.streams[owner] -= 1
            if service.streams[owner] <= 0:
                del service.streams[owner]

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _event_id(header: str | None) -> int:
    """Last-Event-ID as a sequence number (0: from the start); 400 for anything but a plain number."""
    text = (header or "").strip()
    if not text:
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > EVENT_ID_DIGITS:
        raise http_error(
            400,
            "invalid_request",
            "The Last-Event-ID header must be the id of an event this service sent (a number).",
            "Reconnect without it to start from the beginning.",
        )
    return int(text)


@router.get(
    "/v1/jobs/{job_id}/result",
    responses={**ERRORS, 409: {"model": ErrorOut}, 410: {"model": ErrorOut}},
    tags=["jobs"],
    response_class=FileResponse,
)
def job_result(job_id: str, service: ServiceDep, owner: Caller):
    """The finished file with its content type; Range requests are answered (206)."""
    job = _job(service, owner, job_id)
    if job.state != "done":
        raise http_error(
            409,
            "not_ready",
            f"Job {job.id} is {job.state}.",
            "Wait for state 'done' (GET /v1/jobs/{id} or its events).",
        )
    if "output" not in job.result:  # a voice job: its result is a voice
        raise http_error(
            404,
            "not_found",
            f"Job {job.id} made a voice, not a file.",
            f"GET /v1/voices/{job.result.get('voice', '')} shows it.",
        )
    path = Path(job.result["output"])
    if not path.is_file():
        raise http_error(
            410,
            "expired",
            f"The result of job {job.id} has expired (the server's cache was pruned).",
            "Submit the job again (finished steps are cached).",
        )
    return FileResponse(path, media_type=job.result["content_type"], filename=path.name)


@router.get("/v1/voices", response_model=list[VoiceOut], responses=ERRORS, tags=["voices"])
def voices(service: ServiceDep, owner: Caller) -> list[VoiceOut]:
    return [
        VoiceOut(name=v.name, kind=v.kind, description=str(v.meta.get("description", "")))
        for v in service.singer.list_voices()
    ]


@router.get("/healthz", tags=["service"])
def healthz(service: ServiceDep, x_api_key: Annotated[str | None, Header()] = None) -> dict:
    """Liveness: without a key, only that the service is up; with a valid key also the queue's size, free disk
    and the broker's last error."""
    if service.keys.owner(x_api_key) is None:
        return {"ok": True}
    counts = service.store.counts()
    free = shutil.disk_usage(service.settings.home).free
    broker_error = getattr(service.worker, "last_error", "")
    return {
        "ok": not broker_error,
        "queued": counts["queued"],
        "running": counts["running"],
        "disk_free_bytes": free,
        **({"broker_error": broker_error} if broker_error else {}),
    }


@router.get("/metrics", response_class=PlainTextResponse, tags=["service"])
def metrics(service: ServiceDep, owner: Caller) -> str:
    """Prometheus text format: jobs by state, requests by route and status, the process's warm models, the path
    each engine runs on (device, precision, threads) and CPU-seconds per step over finished jobs."""
    from ..engines import warm

    lines = ["# TYPE singer_jobs gauge"]
    lines += [f'singer_jobs{{state="{s}"}} {n}' for s, n in service.store.counts().items()]
    lines.append("# TYPE singer_http_requests_total counter")
    lines += [
        f'singer_http_requests_total{{route="{r}",status="{s}"}} {n}' for (r, s), n in sorted(service.requests.items())
    ]
    lines += warm.prometheus()
    from ..engines.registry import prometheus_paths

    lines += prometheus_paths(service.settings)
    lines.append("# TYPE singer_step_cpu_seconds_total counter")
    lines += [
        f'singer_step_cpu_seconds_total{{step="{k}"}} {v:.3f}' for k, v in service.store.cpu_seconds_by_step().items()
    ]
    return "\n".join(lines) + "\n"
