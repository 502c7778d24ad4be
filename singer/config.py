"""Settings, read from SINGER_* environment variables (pydantic-settings).

Nothing is created at import time: call :func:`Settings` (or ``Settings.from_env()``) where needed and pass
the object down. Paths are resolved lazily so tests can point everything at a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent


def _default_home() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "singer"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SINGER_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Root for cache, runs and voices.")
    cache_dir: Path | None = Field(default=None, description="Content-addressed step cache (default HOME/cache).")
    models_dir: Path | None = Field(default=None, description="Model files and user voices (default HOME/models).")
    library: str = Field(default="", description="Local music library folders, separated by os.pathsep.")
    workflows_dir: Path | None = Field(default=None, description="Extra workflow TOML files.")
    device: str = Field(default="cpu", description="Torch device for neural engines.")
    threads: int = Field(default=0, description="Torch/CPU threads; 0 = all cores.")
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        default="fp32",
        description="Number format of the RVC content model and decoder: fp32 (default; bf16 measured no faster "
        "here), auto (bf16 only where the CPU has native bf16, else fp32), bf16, int8 (content model).",
    )
    max_duration: float = Field(default=20 * 60, description="Longest input accepted, seconds.")
    search_max_duration: float = Field(default=15 * 60, description="Search skips candidates longer than this.")
    search_results: int = Field(default=5, description="Candidates returned by search.")
    network_timeout: float = Field(default=10.0, description="Seconds before a network call gives up.")
    max_download_mb: float = Field(
        default=300.0,
        gt=0,
        description="Largest song download, MB (counted while "
        "downloading: a server that sends no length is cut off too).",
    )
    download_timeout: float = Field(default=900.0, gt=0, description="Longest a song download may take, seconds.")
    downloads_keep_mb: float = Field(
        default=5000.0, gt=0, description="Finished downloads kept for reuse, MB (oldest removed first)."
    )
    allow_private_urls: bool = Field(default=False, description="Allow URL sources on loopback/private hosts.")
    url_allow: str = Field(
        default="",
        description="Hosts and networks downloads may reach although not public, "
        "comma-separated host[:port] or CIDR entries (music.lan:8080,10.0.0.0/24).",
    )
    uvr_model: str = Field(
        default="",
        description="UVR vocals model when a step names none: preset, manifest name "
        "or file in MODELS/uvr (default: the best-vocals preset).",
    )
    max_warm_models: int = Field(
        default=6,
        ge=1,
        description="Models kept loaded per process, all engines together (separator networks, RVC voices, "
        "content encoder, pitch trackers); the least recently used is dropped first.",
    )
    max_voice_mb: float = Field(
        default=1000.0,
        gt=0,
        description="Largest voice a user adds (a download, an upload, or what a zip unpacks to), MB.",
    )
    # HTTP service
    api_keys: str = Field(default="", description="Accepted API keys, comma-separated (header X-API-Key).")
    admin_keys: str = Field(
        default="",
        description="Operator API keys, comma-separated: they may also add, merge and remove voices "
        "(ordinary keys list and use them).",
    )
    rate_limit: int = Field(default=120, ge=1, description="Requests per minute per API key.")
    max_jobs_per_key: int = Field(default=5, ge=1, description="Queued + running jobs per API key.")
    max_upload_mb: float = Field(default=25.0, gt=0, description="Largest voice-note upload, MB.")
    max_upload_duration: float = Field(default=300.0, gt=0, description="Longest voice-note upload, seconds.")
    workers: int = Field(default=1, ge=1, description="Jobs run at once by the embedded worker (per device).")
    webhook_secret: str = Field(default="", description="HMAC-SHA256 key that signs webhook calls.")
    broker: str = Field(
        default="", description="Celery broker URL (redis://host:6379/0) for scale-out; empty = the embedded worker."
    )
    job_timeout: float = Field(default=3 * 3600.0, gt=0, description="Longest a job may run, seconds (Celery).")
    batch_roots: str = Field(
        default="",
        description="Server folders a batch may name (POST /v1/batches folder=), "
        "separated by os.pathsep; empty = folder batches are refused.",
    )
    max_batch_files: int = Field(default=500, ge=1, description="Most files in one batch.")
    max_batches_per_key: int = Field(default=2, ge=1, description="Unfinished batches per API key.")
    http_library: bool = Field(
        default=False,
        description="Let HTTP callers' searches reach the local music library "
        "(SINGER_LIBRARY); off: they search the web only. Server paths are never accepted "
        "over HTTP.",
    )
    max_body_mb: float = Field(
        default=1.0, gt=0, description="Largest JSON request body, MB (uploads have their own limits)."
    )
    max_batch_upload_mb: float = Field(
        default=200.0, gt=0, description="Largest POST /v1/batches upload (all files together), MB."
    )
    max_streams_per_key: int = Field(default=4, ge=1, description="Open event streams (SSE) per API key.")
    stream_max_seconds: float = Field(
        default=1800.0, gt=0, description="Longest an event stream stays open; clients reconnect with Last-Event-ID."
    )
    auth_failures_per_minute: int = Field(
        default=20, ge=1, description="Failed API-key checks per client address per minute before 429."
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a client may take to send a request's headers."
    )
    body_timeout: float = Field(default=30.0, gt=0, description="Seconds a request body may stall between chunks.")
    trusted_proxies: str = Field(
        default="",
        description="Reverse-proxy addresses (comma-separated) whose "
        "X-Forwarded-For names the client (per-address throttling).",
    )
    max_requests_per_address: int = Field(
        default=32,
        ge=1,
        description="Requests in flight at once from one client address (event streams included); more get 429.",
    )
    max_connections: int = Field(
        default=200, ge=1, description="Open connections and requests the server accepts at once (more get 503)."
    )

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.home) / "cache"

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir) if self.models_dir else Path(self.home) / "models"

    @property
    def runs_path(self) -> Path:
        return Path(self.home) / "runs"

    @property
    def voices_path(self) -> Path:
        return self.models_path / "voices"

    @property
    def downloads_path(self) -> Path:
        return self.cache_path / "downloads"

    @property
    def library_paths(self) -> list[Path]:
        return [Path(p).expanduser() for p in self.library.split(os.pathsep) if p.strip()]

    @property
    def batch_root_paths(self) -> list[Path]:
        return [Path(p).expanduser() for p in self.batch_roots.split(os.pathsep) if p.strip()]
