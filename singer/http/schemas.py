"""Request and response bodies of the HTTP API (they make the OpenAPI document, with examples)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..keys import KEY_LIMIT, parse_key

Format = Literal["mp3", "ogg", "opus", "wav", "flac", "m4a"]
JobState = Literal["queued", "running", "done", "failed"]
QUERY_MAX = 500  # characters of a search text or URL
VOICE_MAX = 100  # characters of a voice name
KEY_TEXT_MAX = 20  # characters of a key given as text (form fields)
CALLBACK_MAX = 2000  # characters of a webhook URL
PICK_MAX = 20  # search candidates a client may ask for and pick from
FOLDER_MAX = 4096  # characters of a batch's server folder


class CoverIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"query": "twinkle twinkle little star", "voice": "ayana", "format": "ogg", "key": "auto"}]
        },
    )

    query: str = Field(..., min_length=1, max_length=QUERY_MAX, description="Search text or an http(s) URL.")
    voice: str | None = Field(
        None, max_length=VOICE_MAX, description="Voice name (GET /v1/voices); default: the service's."
    )
    format: Format = Field("ogg", description="ogg/opus voice note (chat apps), mp3, wav, flac, m4a.")
    key: Annotated[float, Field(ge=-KEY_LIMIT, le=KEY_LIMIT)] | Literal["auto"] | None = Field(
        None, description="Semitones (-24..24) or 'auto' for the voice's range."
    )
    pick: int | None = Field(
        None, ge=1, le=PICK_MAX, description="Take search candidate N (GET /v1/search) instead of the best."
    )
    callback_url: str | None = Field(None, max_length=CALLBACK_MAX, description="Gets a signed POST when the job ends.")

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, v: Any) -> Any:
        """The one key rule (:func:`singer.keys.parse_key`): NaN, infinities and out-of-range shifts are refused."""
        return parse_key(v, "key")


class JobAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"job_id": "3f2a...", "state": "queued", "status_url": "/v1/jobs/3f2a..."}]}
    )
    job_id: str
    state: str
    status_url: str


class JobResult(BaseModel):
    url: str = Field(..., description="GET it for the file (Range requests work).")
    content_type: str
    format: str
    duration: float = Field(..., description="Seconds.")
    title: str = ""
    voice: str = ""
    pitch: dict[str, Any] | None = Field(
        None,
        description="What the conversion did to the pitch: key (vocal shift, "
        "semitones), instrumental_key, and octave (the shift the converter chose "
        "and why) when it chose one.",
    )
    cost: dict[str, Any] | None = Field(
        None,
        description="What the job cost: cpu_seconds of the whole run and steps_cpu_seconds per step (cached steps ~0).",
    )


class JobError(BaseModel):
    error: str
    message: str
    hint: str = ""
    reasons: dict[str, str] | None = Field(None, description="Per-backend reasons, when every engine was tried.")


class JobOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "3f2a...",
                    "kind": "cover",
                    "state": "running",
                    "step": "convert",
                    "progress": 0.55,
                    "error": None,
                    "result": None,
                    "created": 1763700000.0,
                    "updated": 1763700042.5,
                }
            ]
        }
    )
    job_id: str
    kind: str
    state: JobState
    step: str
    progress: float = Field(..., ge=0, le=1)
    error: JobError | None = None
    result: JobResult | None = None
    batch: str | None = Field(None, description="The batch the job belongs to, if any.")
    created: float
    updated: float


class BatchAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batch_id": "9c1e...",
                    "state": "queued",
                    "total": 3,
                    "status_url": "/v1/batches/9c1e...",
                    "result_url": "/v1/batches/9c1e.../result",
                }
            ]
        }
    )
    batch_id: str
    state: Literal["queued", "running", "done"]
    total: int = Field(..., description="Files in the batch, one job each.")
    status_url: str
    result_url: str = Field(..., description="The zip of the outputs, once the batch is done.")


class BatchCounts(BaseModel):
    total: int
    queued: int
    running: int
    done: int
    failed: int


class BatchItemOut(BaseModel):
    input: str = Field(..., description="The file's path relative to the folder (an upload: its file name).")
    job_id: str
    state: JobState
    error: JobError | None = Field(None, description="Why the file failed (a user message).")
    result_url: str | None = Field(None, description="The converted file, once done.")


class BatchOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batch_id": "9c1e...",
                    "state": "running",
                    "workflow": "voice_note",
                    "voice": "ayana",
                    "created": 1763700000.0,
                    "updated": 1763700042.5,
                    "counts": {"total": 3, "queued": 1, "running": 1, "done": 0, "failed": 1},
                    "progress": 0.45,
                    "result_url": None,
                    "items": [
                        {
                            "input": "monday/hello.ogg",
                            "job_id": "3f2a...",
                            "state": "running",
                            "error": None,
                            "result_url": None,
                        },
                        {
                            "input": "notes.txt.ogg",
                            "job_id": "77b0...",
                            "state": "failed",
                            "result_url": None,
                            "error": {
                                "error": "bad_input",
                                "message": "Not a readable audio or video file: notes.txt.ogg",
                                "hint": "Convert it to mp3, wav or flac first.",
                            },
                        },
                    ],
                }
            ]
        }
    )
    batch_id: str
    state: Literal["queued", "running", "done"] = Field(..., description="done when every file's job has ended.")
    workflow: str
    voice: str | None = None
    created: float
    updated: float
    counts: BatchCounts
    progress: float = Field(..., ge=0, le=1)
    result_url: str | None = Field(None, description="The zip of the outputs and summaries, once done.")
    report_url: str | None = Field(
        None, description="The HTML report (counts, failures, a player per file), once done."
    )
    items: list[BatchItemOut]


class CandidateOut(BaseModel):
    n: int
    title: str
    artist: str = ""
    duration: float | None = None
    source: str
    url: str = ""


class SearchOut(BaseModel):
    query: str
    candidates: list[CandidateOut]


class VoiceOut(BaseModel):
    name: str
    kind: str
    description: str = ""


class ErrorOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": "bad_input", "message": "The song query is empty.", "hint": "Give a search text or a URL."}
            ]
        }
    )
    error: str
    message: str
    hint: str = ""


RANGE_MAX = 40  # characters of a singing range ("A3-E5")
SHA256_LEN = 64
Gender = Literal["", "female", "male"]


class VoiceAddIn(BaseModel):
    """An RVC voice from a link (operator keys only): a .pth, a zip holding one, a Hugging Face file or repo link,
    a pixeldrain link."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "ayana_a", "url": "https://huggingface.co/user/repo/blob/main/a.pth", "range": "A3-E5"}
            ]
        },
    )

    name: str = Field(..., min_length=1, max_length=VOICE_MAX, description="New voice name (a-z, 0-9, - and _).")
    url: str = Field(..., min_length=1, max_length=QUERY_MAX, description="http(s) link to the voice.")
    index_url: str | None = Field(None, max_length=QUERY_MAX, description="Link to its .index when apart.")
    sha256: str | None = Field(None, min_length=SHA256_LEN, max_length=SHA256_LEN, description="Pin the download.")
    range: str | None = Field(None, max_length=RANGE_MAX, description="Singing range, e.g. A3-E5 (for key auto).")
    gender: Gender = Field("", description="female / male: a typical range when none is given.")
    description: str = Field("", max_length=500)
    licence: str = Field("", max_length=2000)
    overwrite: bool = Field(False, description="Replace a voice of the same name.")
    callback_url: str | None = Field(None, max_length=CALLBACK_MAX, description="Gets a signed POST when the job ends.")


class VoiceMergeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"names": ["ayana_a", "ayana_b"], "weights": [0.6, 0.4], "name": "ayana"}]},
    )

    names: list[Annotated[str, Field(min_length=1, max_length=VOICE_MAX)]] = Field(..., min_length=2, max_length=8)
    weights: list[Annotated[float, Field(ge=0, le=1000)]] | None = Field(None, min_length=2, max_length=8)
    name: str = Field(..., min_length=1, max_length=VOICE_MAX, description="Name of the merged voice.")
    overwrite: bool = False
    callback_url: str | None = Field(None, max_length=CALLBACK_MAX)


class VoiceDetail(BaseModel):
    """One voice: what it is, its register, where it came from. No server paths."""

    name: str
    kind: str
    bundled: bool
    description: str = ""
    licence: str = ""
    gender: str = ""
    version: str | None = Field(None, description="RVC v1 / v2.")
    sample_rate: int | None = None
    f0: bool | None = None
    vocoder: str | None = None
    embedder: str | None = None
    range: str | None = Field(None, description="Singing range (for key auto), when known.")
    range_from: str | None = None
    bytes: int | None = None
    sha256: dict[str, str] = Field(default_factory=dict, description="File -> sha256, as recorded when added.")
    source: str | None = Field(None, description="The link it was added from.")
    notes: list[str] = Field(default_factory=list)


class VoiceRemoved(BaseModel):
    removed: str
