"""Voice routes: show one voice (any key); add from a link or an upload, merge, remove (operator keys only,
``SINGER_ADMIN_KEYS``). Adding and merging are jobs on the one queue (a download can take minutes); what can be
checked at the door is checked there (name, range, link and URL policy, that the voices exist), the job checks it
all again. No answer carries a server path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, UploadFile

from ..errors import InputError
from ..jobs.paths import uploads_dir
from .deps import ERRORS, Caller, ServiceDep, http_error, too_many_jobs
from .routes import accept_job, door_url_check
from .schemas import (
    CALLBACK_MAX,
    RANGE_MAX,
    VOICE_MAX,
    ErrorOut,
    Gender,
    JobAccepted,
    VoiceAddIn,
    VoiceDetail,
    VoiceMergeIn,
    VoiceRemoved,
)
from .security import KeyRing
from .uploads import stream_upload

router = APIRouter(tags=["voices"])
ANY_KEY: dict[int | str, dict[str, Any]] = {k: v for k, v in ERRORS.items()}  # noqa: C416 - typed for FastAPI
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {**ANY_KEY, 403: {"model": ErrorOut}}
CHUNK = 1 << 20


async def operator(service: ServiceDep, owner: Caller, x_api_key: Annotated[str | None, Header()] = None) -> str:
    """The caller's owner id when its key is an operator key (SINGER_ADMIN_KEYS); 403 for any other valid key."""
    if KeyRing(service.settings.admin_keys).owner(x_api_key) is None:
        raise http_error(
            403,
            "forbidden",
            "This API key may list and use voices, not add, merge or remove them.",
            "Voices are changed with an operator key (SINGER_ADMIN_KEYS on the server).",
        )
    return owner


Operator = Annotated[str, Depends(operator)]


def _new_name(service, name: str, overwrite: bool) -> None:
    """A refusal now (422) rather than a failed job later: a bad, bundled or taken name."""
    service.singer.voices._check_new(name, overwrite)


def _range(text: str | None) -> None:
    if text:
        from ..engines.converters.rvc.voice import parse_range

        parse_range(text)


@router.get("/v1/voices/{name}", response_model=VoiceDetail, responses=ANY_KEY)
def get_voice(name: str, service: ServiceDep, owner: Caller) -> VoiceDetail:
    """One voice: model (RVC version, sample rate, f0), singing range, size, sha256, licence, where it came from."""
    v = service.singer.voices.get(name).to_dict()
    reg, src = v.get("register") or {}, v.get("source") or {}
    sing = reg.get("singing") or {}
    return VoiceDetail(
        name=v["name"],
        kind=v["kind"],
        bundled=v["bundled"],
        description=str(v.get("description", "")),
        licence=str(v.get("licence", "")),
        gender=str(v.get("gender", "")),
        version=v.get("version"),
        sample_rate=v.get("sample_rate"),
        f0=v.get("f0"),
        vocoder=v.get("vocoder"),
        embedder=v.get("embedder_model"),
        range=sing.get("range"),
        range_from=sing.get("from"),
        bytes=v.get("bytes"),
        sha256=dict(v.get("sha256") or {}),
        source=src.get("url"),
        notes=list(src.get("notes") or []),
    )


@router.post("/v1/voices", status_code=202, response_model=JobAccepted, responses=ADMIN_ERRORS)
def add_voice(body: VoiceAddIn, service: ServiceDep, owner: Operator) -> JobAccepted:
    """Add an RVC voice from a link (a .pth, a zip, a Hugging Face file or repo, pixeldrain). A job: follow it;
    its result links to the new voice."""
    from ..voicesources import check_sha256, is_url, resolve_link

    _new_name(service, body.name, body.overwrite)
    _range(body.range)
    check_sha256(body.sha256)
    for url in (body.url, body.index_url):
        if url is None:
            continue
        if not is_url(url):
            raise InputError("A voice is added here from an http(s) link.", hint="Give its link, or upload the file.")
        door_url_check(resolve_link(url).url, service.settings)
    request = {
        "name": body.name,
        "url": body.url,
        "index_url": body.index_url,
        "sha256": body.sha256,
        "vocal_range": body.range,
        "gender": body.gender,
        "description": body.description,
        "licence": body.licence,
        "overwrite": body.overwrite,
    }
    request = {k: v for k, v in request.items() if v not in (None, "", False)}
    return accept_job(service, owner, "voice_add", request, body.callback_url)


def _save(service, file: UploadFile, limit: int) -> Path:
    """Stream an uploaded model file to a random name in the uploads folder (413 past ``limit`` bytes)."""
    return stream_upload(
        file,
        uploads_dir(service.settings),
        limit,
        f"The upload is over {service.settings.max_voice_mb:g} MB.",
        "Ask the operator to raise SINGER_MAX_VOICE_MB, or send the voice's own files only.",
    )


@router.post(
    "/v1/voices/upload",
    status_code=202,
    response_model=JobAccepted,
    responses={**ADMIN_ERRORS, 413: {"model": ErrorOut}},
)
def upload_voice(
    service: ServiceDep,
    owner: Operator,
    name: Annotated[str, Form(min_length=1, max_length=VOICE_MAX)],
    file: Annotated[UploadFile, File(description="An RVC .pth, or a zip holding one")],
    index: Annotated[UploadFile | None, File(description="Its .index, when apart")] = None,
    range: Annotated[str | None, Form(max_length=RANGE_MAX)] = None,  # noqa: A002 - the API's field name
    gender: Annotated[Gender, Form()] = "",
    description: Annotated[str, Form(max_length=500)] = "",
    licence: Annotated[str, Form(max_length=2000)] = "",
    overwrite: Annotated[bool, Form()] = False,
    callback_url: Annotated[str | None, Form(max_length=CALLBACK_MAX)] = None,
) -> JobAccepted:
    """Add an RVC voice from uploaded files (read with the same no-code-execution loader as any voice)."""
    _new_name(service, name, overwrite)
    _range(range)
    limit = int(service.settings.max_voice_mb * 1e6)
    saved: list[Path] = []
    with service.admit(
        owner, "job", service.store.active(owner), service.settings.max_jobs_per_key, too_many_jobs(service)
    ):
        try:
            saved.append(_save(service, file, limit))
            if index is not None and index.filename:
                saved.append(_save(service, index, limit))
            request: dict[str, Any] = {"name": name, "upload": str(saved[0]), "vocal_range": range, "gender": gender}
            request.update(description=description, licence=licence, overwrite=overwrite)
            if len(saved) > 1:
                request["index_upload"] = str(saved[1])
            request = {k: v for k, v in request.items() if v not in (None, "", False)}
            return accept_job(service, owner, "voice_add", request, callback_url)
        except BaseException:  # refused: the uploads go (an accepted job's go when it ends)
            for p in saved:
                p.unlink(missing_ok=True)
            raise


@router.post("/v1/voices/merge", status_code=202, response_model=JobAccepted, responses=ADMIN_ERRORS)
def merge_voices(body: VoiceMergeIn, service: ServiceDep, owner: Operator) -> JobAccepted:
    """Merge voices by weights into a new voice (RVC with RVC, profiles with profiles). A job."""
    for n in body.names:
        service.singer.voices.get(n)  # 404 now for a voice that is not there
    if body.weights is not None and len(body.weights) != len(body.names):
        raise InputError(f"{len(body.names)} voices but {len(body.weights)} weights.", hint="Give one weight each.")
    if body.weights is not None and sum(body.weights) <= 0:
        raise InputError("The weights add up to 0.", hint="Give positive weights, e.g. [0.6, 0.4].")
    _new_name(service, body.name, body.overwrite)
    request = {"names": body.names, "weights": body.weights, "name": body.name, "overwrite": body.overwrite}
    return accept_job(service, owner, "voice_merge", request, body.callback_url)


@router.delete("/v1/voices/{name}", response_model=VoiceRemoved, responses=ADMIN_ERRORS)
def remove_voice(name: str, service: ServiceDep, owner: Operator) -> VoiceRemoved:
    """Remove a voice that was added (bundled voices stay)."""
    service.singer.voices.get(name)  # 404 for one that is not there
    service.singer.remove_voice(name)
    return VoiceRemoved(removed=name)
