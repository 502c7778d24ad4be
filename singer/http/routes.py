"""Routes. Thin: each validates, checks the caller, and calls the job store or the library facade."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse

from ..config import Settings
from ..errors import InputError, NetworkUnavailable
from ..jobs.worker import uploads_dir
from ..keys import parse_key
from .app import Service
from .schemas import CandidateOut, CoverIn, ErrorOut, Format, JobAccepted, JobOut, SearchOut, VoiceOut

router = APIRouter()
ERRORS = {s: {"model": ErrorOut} for s in (400, 401, 404, 422, 429)}
CHUNK = 1 << 16


async def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


async def caller(service: ServiceDep, x_api_key: Annotated[str | None, Header()] = None) -> str:
    """The owner id of a valid API key (401 otherwise), within its rate limit (429 otherwise)."""
    owner = service.keys.owner(x_api_key)
    if owner is None:
        raise HTTPException(
            401,
            {
                "error": "unauthorized",
                "message": "Missing or unknown API key.",
                "hint": "Send your key in the X-API-Key header.",
            },
        )
    ok, wait = service.limiter.allow(owner)
    if not ok:
        raise HTTPException(
            429,
            {
                "error": "rate_limited",
                "message": "Too many requests for this API key.",
                "hint": f"Retry in {wait:.1f} s.",
            },
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    return owner


Caller = Annotated[str, Depends(caller)]


def _too_many(service: Service) -> HTTPException:
    return HTTPException(
        429,
        {
            "error": "too_many_jobs",
            "message": f"This API key already has {service.settings.max_jobs_per_key} jobs queued or running.",
            "hint": "Wait for one to finish.",
        },
        headers={"Retry-After": "10"},
    )


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
    _door_url_check(url, settings)


def _door_url_check(url: str, settings: Settings) -> None:
    """The URL policy at the door (the worker checks every connection again). A host name that does not resolve
    now may later: the job (or the webhook delivery) says so if it still does not; that is no reason to refuse."""
    from ..engines.sources.urls import check_url

    try:
        check_url(url, settings)
    except NetworkUnavailable:
        pass


def _accept(service: Service, owner: str, kind: str, request: dict, callback_url: str | None) -> JobAccepted:
    check_callback(service.settings, callback_url)
    job = service.store.submit(owner, kind, request, callback_url, max_active=service.settings.max_jobs_per_key)
    if job is None:
        raise _too_many(service)
    return JobAccepted(job_id=job.id, state=job.state, status_url=f"/v1/jobs/{job.id}")


def _query(text: str, settings: Settings) -> str:
    """A search text or an http(s) URL; anything written like a path is refused here, before a job exists (the
    job's worker applies the same rule again). Nothing here touches the file system."""
    from ..engines.sources.inputs import classify

    found = classify(text, local=False)
    if found.kind == "url":
        _door_url_check(found.url, settings)
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
    return _accept(service, owner, "cover", {k: v for k, v in request.items() if v is not None}, body.callback_url)


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
    voice: Annotated[str | None, Form(max_length=100)] = None,
    format: Annotated[Format, Form()] = "ogg",
    key: Annotated[str | None, Form(max_length=20, description="Semitones (-24..24) or auto.")] = None,
    trim: Annotated[bool | None, Form(description="Cut silence before/after the voice (default on).")] = None,
    denoise: Annotated[bool | None, Form(description="Lower steady background noise first.")] = None,
    callback_url: Annotated[str | None, Form(max_length=2000)] = None,
) -> JobAccepted:
    """Convert an uploaded voice note (any audio or video ffmpeg reads, by content) into a voice."""
    key_value = parse_key(key, "key")  # the one key rule, before the upload is copied
    if voice:
        service.singer.voices.get(voice)  # a wrong voice is a 404 now, not a failed job later
    with service.admit(
        owner, "job", service.store.active(owner), service.settings.max_jobs_per_key, _too_many(service)
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
            return _accept(service, owner, "convert", {k: v for k, v in request.items() if v is not None}, callback_url)
        except BaseException:  # refused: the upload goes (an accepted one goes when its job ends)
            path.unlink(missing_ok=True)
            raise


def save_upload(settings: Settings, file: UploadFile, folder: Path, label: str | None = None) -> Path:
    """Stream an upload into ``folder`` and check it: at most ``max_upload_mb`` (413), audio by content (ffprobe;
    InputError otherwise), at most ``max_upload_duration`` seconds (InputError). Returns its path; a refused upload
    leaves nothing behind. With ``label``, error messages call the upload that instead of by our file name."""
    from .. import audio

    limit = int(settings.max_upload_mb * 1e6)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / uuid.uuid4().hex  # our name: nothing from the request reaches the file system
    try:
        with open(path, "wb") as out:
            size = 0
            while chunk := file.file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(
                        413,
                        {
                            "error": "too_large",
                            "message": f"The upload is over {settings.max_upload_mb:g} MB.",
                            "hint": "Send a shorter note.",
                        },
                    )
                out.write(chunk)
        try:
            info = audio.probe(path)  # content sniffing: InputError when there is no audio stream
        except InputError as e:
            if label:  # ffprobe's words name the file by its full path
                e.user_message = e.user_message.replace(str(path), label).replace(path.name, label)
                e.hint = e.hint and e.hint.replace(str(path), label).replace(path.name, label)
            raise
        if info.duration > settings.max_upload_duration:
            raise InputError(
                f"The voice note is {info.duration:.0f} s long; the limit is {settings.max_upload_duration:.0f} s.",
                hint="Send a shorter note.",
            )
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@router.get("/v1/search", response_model=SearchOut, responses=ERRORS, tags=["songs"])
def search(
    service: ServiceDep,
    owner: Caller,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
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
    job = service.store.get(job_id, owner=owner) if len(job_id) <= 64 else None
    if job is None:  # someone else's job looks exactly like a missing one
        raise HTTPException(
            404,
            {
                "error": "not_found",
                "message": f"No job {job_id[:64]} for this API key.",
                "hint": "Use the job_id your submission returned.",
            },
        )
    return job


def job_out(job) -> JobOut:
    return JobOut(**job.public())


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=ERRORS, tags=["jobs"])
async def get_job(job_id: str, service: ServiceDep, owner: Caller) -> JobOut:
    """State, current step, progress 0..1, the error (a user message) or the result's link."""
    return job_out(_job(service, owner, job_id))


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
        raise HTTPException(
            429,
            {
                "error": "too_many_streams",
                "message": f"This API key already has {settings.max_streams_per_key} event streams open.",
                "hint": "Close one, or poll GET /v1/jobs/{id}.",
            },
            headers={"Retry-After": "5"},
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
                    yield f"id: {seq}\nevent: {type_}\ndata: {json.dumps(data)}\n\n"
                    if type_ in ("done", "failed"):
                        return
                if not events and _job(service, owner, job_id).finished:
                    return  # resumed past the end of a finished job: nothing more will come
                yield ": keep-alive\n\n"
                await asyncio.sleep(0.5)
            yield "retry: 1000\n: stream lifetime reached; reconnect with Last-Event-ID\n\n"
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
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise HTTPException(
            400,
            {
                "error": "invalid_request",
                "message": "The Last-Event-ID header must be the id of an event this service sent (a number).",
                "hint": "Reconnect without it to start from the beginning.",
            },
        )
    return int(text)


@router.get(
    "/v1/jobs/{job_id}/result",
    responses={**ERRORS, 409: {"model": ErrorOut}},
    tags=["jobs"],
    response_class=FileResponse,
)
def job_result(job_id: str, service: ServiceDep, owner: Caller):
    """The finished file with its content type; Range requests are answered (206)."""
    job = _job(service, owner, job_id)
    if job.state != "done":
        raise HTTPException(
            409,
            {
                "error": "not_ready",
                "message": f"Job {job.id} is {job.state}.",
                "hint": "Wait for state 'done' (GET /v1/jobs/{id} or its events).",
            },
        )
    path = Path(job.result["output"])
    if not path.is_file():
        raise HTTPException(
            404,
            {
                "error": "not_found",
                "message": "The result file was removed.",
                "hint": "Submit the job again (finished steps are cached).",
            },
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
    """Prometheus text format: jobs by state, requests by route and status, the process's warm models."""
    from ..engines import warm

    lines = ["# TYPE singer_jobs gauge"]
    lines += [f'singer_jobs{{state="{s}"}} {n}' for s, n in service.store.counts().items()]
    lines.append("# TYPE singer_http_requests_total counter")
    lines += [
        f'singer_http_requests_total{{route="{r}",status="{s}"}} {n}' for (r, s), n in sorted(service.requests.items())
    ]
    lines += warm.prometheus()
    return "\n".join(lines) + "\n"
