#!/usr/bin/env python3
"""The HTTP service under load, against real ``singer serve`` processes. Prints ONE JSON object.

Every phase starts ``python -m singer serve`` as a child process (its own session, so the whole process group can
be killed) on a free loopback port, with a fresh SINGER_HOME in a temporary folder, SINGER_API_KEYS set and every
other inherited SINGER_* variable removed; it is ready when GET /healthz answers. The client is httpx.

  polling   While the embedded worker converts long uploads (the 34 s demo song looped to --long-seconds by
            stream copy, each copy cut at another offset so the step cache never hits), client threads poll
            GET /v1/jobs/{id} open-loop at --rate requests/s for --poll-seconds on keep-alive connections: request
            i is sent at t0 + i/rate (late if every thread is busy: the lag is reported). The polled id is the job
            the worker is running (the next one once it is done), so `worker_busy_share` = share of answers that
            said "running". Reported: latency p50/p90/p99/max (ms, send to full answer; also by the job step the
            answer named), achieved rate, errors (any non-200 or exception), server and client CPU seconds, and
            an `idle` baseline: the same polling of a finished job for --idle-seconds before the long jobs start.
            Goal: p99 < 50 ms, 0 errors. This server runs with a per-key SINGER_RATE_LIMIT far above the poll
            rate, so the limiter never answers 429 here.
  burst     --burst submissions at once (threads released by a barrier, one connection each) of distinct 2 s
            ogg voice notes to POST /v1/conversions, with realistic limits (SINGER_MAX_JOBS_PER_KEY=20,
            SINGER_RATE_LIMIT=120). Counted: 202 / 429 (by error code) / other. Every 202 job is then followed
            (oldest first, within the rate limit, honouring Retry-After) until done; "lost" = a 202 job id the
            service no longer knows or that never finishes. Also read from jobs.db: rows vs 202 answers, the most
            jobs that were queued+running at once (vs the per-key limit), uploads left with no job. Goal: only 202
            or 429, none lost, every accepted job done.
  crash     --crash-jobs distinct voice notes (--crash-note-seconds long) are submitted; when jobs.db shows one
            job running with progress > 0 and others queued, the server gets SIGKILL (then its process group, for
            ffmpeg children); a new `singer serve` starts on the same SINGER_HOME. Reported: states at the kill,
            how many of the jobs end done (goal: all), and how many ran again (attempts > 1 in jobs.db).

Usage: python benchmarks/bench_http.py [--quick] [--poll-seconds 60] [--rate 200] [--threads 16] [--burst 50]
                                       [--crash-jobs 10] [--phases polling,burst,crash] [--keep]
--quick: 10 s of polling (3 s idle), a burst of 10, 4 crash jobs (a smoke test).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx

DEMO = ROOT / "singer" / "data" / "demo" / "demo_song.mp3"
KEY = "bench-key"
LIMITS = {"SINGER_MAX_JOBS_PER_KEY": "20", "SINGER_RATE_LIMIT": "120"}  # the "realistic" limits of burst and crash
FINISHED = ("done", "failed")


# ---- server processes -----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `singer serve` child process in its own process group, logging to a file under its home's parent."""

    live: list[Server] = []  # every server started, for the final clean-up

    def __init__(self, home: Path, env: dict[str, str], log: Path):
        self.home, self.env, self.log = home, env, log
        self.proc: subprocess.Popen | None = None
        self.port, self.stopped = 0, False
        self.shutdown: dict = {}  # how the SIGTERM stop went

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Server:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SINGER_")}
        env.update(SINGER_HOME=str(self.home), SINGER_API_KEYS=KEY, **self.env)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "singer", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        Server.live.append(self)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"singer serve exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"singer serve did not answer /healthz in {timeout:.0f} s: {self.log_tail()}")

    def cpu_seconds(self) -> float:
        """user + system CPU seconds of the server process so far (0 when it is gone)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def crash(self) -> None:
        """kill -9 the server process, then whatever it left in its group (ffmpeg children)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._killpg(signal.SIGKILL)
        self.stopped = True

    def stop(self) -> None:
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        t0, forced = time.perf_counter(), False
        if self.proc.poll() is None:
            self._killpg(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                forced = True
        self._killpg(signal.SIGKILL)
        self.proc.wait()
        self.shutdown = {"seconds": round(time.perf_counter() - t0, 2), "needed_sigkill": forced}

    def _killpg(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def stop_all() -> None:
    for server in Server.live:
        try:
            server.stop()
        except Exception as e:  # keep stopping the others
            print(f"could not stop server {server.proc and server.proc.pid}: {e}", file=sys.stderr)


def log_problems(log: Path, keep: int = 8) -> dict:
    """Warnings, errors and tracebacks a server wrote (uvicorn runs at log level warning: normally nothing)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    bad = [ln for ln in lines if any(w in ln for w in ("Traceback", "ERROR", "Error", "WARNING", "Exception"))]
    return {"log_lines": len(lines), "problem_lines": len(bad), "first": [ln[:300] for ln in bad[:keep]]}


# ---- media ----------------------------------------------------------------------------------------------------------
def long_uploads(folder: Path, count: int, seconds: float) -> list[Path]:
    """``count`` copies of the demo song looped to ``seconds`` (concat demuxer, stream copy: instant), each starting
    at another offset into the song, so their audio differs and no job hits another's step cache."""
    out = []
    for i in range(count):
        listing = folder / f"long{i}.txt"
        entries = [f"file '{DEMO}'", f"inpoint {0.5 + 0.37 * i:.2f}"] + [f"file '{DEMO}'"] * (
            math.ceil(seconds / 34) + 1
        )
        listing.write_text("\n".join(entries) + "\n")
        path = folder / f"long{i}.mp3"
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                str(listing),
                "-t",
                f"{seconds:.1f}",
                "-c",
                "copy",
                str(path),
            ],
            check=True,
        )
        out.append(path)
    return out


def voice_notes(folder: Path, count: int, seconds: float, seed0: int) -> list[Path]:
    """Distinct ogg voice notes (synthetic singing, a seed each) so that no job hits another's step cache."""
    from tests import media

    return [
        media.encoded(
            media.voice_wav(folder / f"n{seed0 + i}.wav", seconds=seconds, seed=seed0 + i),
            folder / f"n{seed0 + i}.ogg",
            "ogg",
        )
        for i in range(count)
    ]


# ---- client helpers -------------------------------------------------------------------------------------------------
def submit(client: httpx.Client, path: Path) -> httpx.Response:
    with open(path, "rb") as f:
        return client.post(
            "/v1/conversions", files={"file": (path.name, f, "application/octet-stream")}, data={"voice": "ayana"}
        )


def follow(client: httpx.Client, ids: list[str], timeout: float, interval: float = 0.5) -> dict:
    """Wait for jobs (oldest first: one worker runs them in order) within the key's rate limit. Returns
    {"final": {id: job json}, "lost": [ids answered 404], "unfinished": [...], "limited": n 429s, "errors": {...}}."""
    pending, final, lost = list(ids), {}, []
    limited, errors = 0, Counter()
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        job_id = pending[0]
        try:
            r = client.get(f"/v1/jobs/{job_id}")
        except httpx.HTTPError as e:
            errors[type(e).__name__] += 1
            time.sleep(interval)
            continue
        if r.status_code == 429:
            limited += 1
            time.sleep(float(r.headers.get("Retry-After", "1")))
        elif r.status_code == 404:
            lost.append(pending.pop(0))
        elif r.status_code != 200:
            errors[str(r.status_code)] += 1
            time.sleep(interval)
        elif r.json()["state"] in FINISHED:
            final[pending.pop(0)] = r.json()
        else:
            time.sleep(interval)
    return {"final": final, "lost": lost, "unfinished": pending, "limited": limited, "errors": dict(errors)}


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    v = sorted(values)

    def at(q: float) -> float:
        return round(v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))], 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(v[-1], 2)}


def jobs_db(home: Path) -> list[dict]:
    """The job rows, read straight from SINGER_HOME/jobs.db (read-only; WAL lets a reader in beside the server)."""
    db = sqlite3.connect(f"file:{home / 'jobs.db'}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        return [
            dict(r)
            for r in db.execute(
                "SELECT id, state, step, progress, attempts, created, updated, request, "
                "error FROM jobs ORDER BY created"
            )
        ]
    finally:
        db.close()


def requeued_events(home: Path) -> int:
    db = sqlite3.connect(f"file:{home / 'jobs.db'}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM events WHERE type = 'requeued'").fetchone()[0]
    finally:
        db.close()


def metrics(client: httpx.Client) -> dict:
    """/metrics request counters by route and status, as {"route status": n}."""
    r = client.get("/metrics")
    if r.status_code != 200:
        return {"unavailable": r.status_code}
    out = {}
    for ln in r.text.splitlines():
        if ln.startswith("singer_http_requests_total{"):
            labels, n = ln[len("singer_http_requests_total{") :].rsplit("} ", 1)
            parts = dict(p.split("=", 1) for p in labels.split(","))
            out[f"{parts['route'].strip(chr(34))} {parts['status'].strip(chr(34))}"] = int(float(n))
    return out


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def client_for(server: Server, **kw) -> httpx.Client:
    return httpx.Client(base_url=server.base, headers={"X-API-Key": KEY}, timeout=kw.pop("timeout", 60.0), **kw)


# ---- phase 1: status polling under load -----------------------------------------------------------------------------
class Poller:
    """Open-loop GETs of the running job's status from ``threads`` keep-alive clients."""

    def __init__(self, base: str, job_ids: list[str], rate: float, seconds: float, threads: int):
        self.base, self.job_ids, self.rate, self.threads = base, job_ids, rate, threads
        self.total = int(rate * seconds)
        self.latency: list[float] = []
        self.lag: list[float] = []
        self.errors: Counter = Counter()
        self.states: Counter = Counter()
        self.by_step: dict[str, list[float]] = {}  # latencies by the job step the answer named
        self.target = 0  # index in job_ids of the job being polled: advances when that job is finished
        self._lock = threading.Lock()
        self._next = itertools.count()

    def run(self) -> float:
        self.t0 = time.perf_counter() + 0.5
        workers = [threading.Thread(target=self._loop, daemon=True) for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return time.perf_counter() - self.t0

    def _loop(self) -> None:
        with httpx.Client(base_url=self.base, headers={"X-API-Key": KEY}, timeout=10.0) as client:
            while (i := next(self._next)) < self.total:
                due = self.t0 + i / self.rate
                if (wait := due - time.perf_counter()) > 0:
                    time.sleep(wait)
                self._one(client, due)

    def _one(self, client: httpx.Client, due: float) -> None:
        index = self.target
        sent = time.perf_counter()
        try:
            r = client.get(f"/v1/jobs/{self.job_ids[min(index, len(self.job_ids) - 1)]}")
            body = r.json() if r.status_code == 200 else {}
        except Exception as e:  # any failure counts as an error
            with self._lock:
                self.errors[type(e).__name__] += 1
            return
        took = (time.perf_counter() - sent) * 1000
        with self._lock:
            self.latency.append(took)
            self.lag.append((sent - due) * 1000)
            if r.status_code != 200:
                self.errors[str(r.status_code)] += 1
                return
            state = body.get("state")
            self.states[state] += 1
            self.by_step.setdefault(f"{state}:{body.get('step') or '-'}", []).append(took)
            if state in FINISHED and self.target == index:
                self.target = index + 1


def measure(server: Server, ids: list[str], rate: float, seconds: float, threads: int) -> dict:
    """One open-loop polling run; its latency figures plus the server's and this client's CPU seconds."""
    cpu0, me0 = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    poller = Poller(server.base, ids, rate, seconds, threads)
    elapsed = poller.run()
    me1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "requests_planned": poller.total,
        "requests_answered": len(poller.latency),
        "seconds": round(elapsed, 2),
        "achieved_rate": round(len(poller.latency) / elapsed, 1),
        "latency_ms": percentiles(poller.latency),
        "send_lag_ms": percentiles(poller.lag),
        "errors": sum(poller.errors.values()),
        "error_kinds": dict(poller.errors),
        "states_seen": dict(poller.states),
        "latency_ms_by_step": {k: {"n": len(v), **percentiles(v)} for k, v in sorted(poller.by_step.items())},
        "worker_busy_share": round(poller.states["running"] / max(1, sum(poller.states.values())), 4),
        "jobs_finished_while_polling": poller.target if poller.states["running"] else 0,
        "server_cpu_s": round(server.cpu_seconds() - cpu0, 1),
        "client_cpu_s": round(me1.ru_utime + me1.ru_stime - me0.ru_utime - me0.ru_stime, 1),
    }


def submit_all(client: httpx.Client, paths: list[Path]) -> list[str]:
    ids = []
    for path in paths:
        r = submit(client, path)
        if r.status_code != 202:
            raise RuntimeError(f"upload {path.name} refused: {r.status_code} {r.text[:300]}")
        ids.append(r.json()["job_id"])
    return ids


def phase_polling(args, work: Path) -> dict:
    home, media = work / "poll-home", work / "poll-media"
    media.mkdir()
    count = args.long_jobs or max(2, math.ceil(args.poll_seconds / 15) + 1)
    uploads = long_uploads(media, count, args.long_seconds)
    note = voice_notes(media, 1, 2.0, seed0=50)
    limit = int(args.rate * 60 * 2) + 1000
    env = {
        "SINGER_RATE_LIMIT": str(limit),
        "SINGER_MAX_JOBS_PER_KEY": str(count + 5),
        "SINGER_MAX_UPLOAD_DURATION": str(args.long_seconds + 60),
        "SINGER_MAX_DURATION": str(args.long_seconds + 60),
        "SINGER_MAX_UPLOAD_MB": "200",
    }
    server = Server(home, env, work / "poll-server.log").start()
    res: dict = {"target_rate": args.rate, "threads": args.threads}
    with client_for(server) as client:
        small = submit_all(client, note)  # a finished job to poll while the worker is idle: the baseline
        follow(client, small, 300.0)
        res["idle"] = measure(server, small, args.rate, args.idle_seconds, args.threads)
        ids = submit_all(client, uploads)
        wait_running(client, ids[0], 120.0)
        load0 = loadavg()
        busy = measure(server, ids, args.rate, args.poll_seconds, args.threads)
        after = [client.get(f"/v1/jobs/{i}").json() for i in ids]
        counters = metrics(client)
    server.stop()
    lat = busy["latency_ms"]
    res.update(
        busy,
        load_avg_before=load0,
        load_avg_after=loadavg(),
        server_requests=counters,
        server_log=log_problems(server.log),
        server_stop=server.shutdown,
        goal={"p99_ms_below": 50, "errors": 0},
    )
    res["long_jobs"] = {
        "count": count,
        "upload_seconds": args.long_seconds,
        "failed": [j["error"] for j in after if j["state"] == "failed"][:3],
        "states_after": dict(Counter(j["state"] for j in after)),
    }
    res["rate_limit_note"] = (
        f"this server ran with SINGER_RATE_LIMIT={limit}/min for its one key ({args.rate:g}/s ="
        f" {args.rate * 60:g}/min polled), so the limiter cannot answer 429 here"
    )
    res["idle_note"] = "idle: the same polling of a finished job for --idle-seconds before the long jobs, worker idle"
    res["meets"] = (
        bool(lat) and lat["p99"] < 50 and busy["errors"] == 0 and busy["requests_answered"] == busy["requests_planned"]
    )
    return res


def wait_running(client: httpx.Client, job_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] == "running":
            return
        if job["state"] in FINISHED:
            raise RuntimeError(f"long job {job_id} ended before polling started: {job}")
        time.sleep(0.2)
    raise RuntimeError(f"long job {job_id} was not running after {timeout:.0f} s")


# ---- phase 2: burst -------------------------------------------------------------------------------------------------
def fire(server: Server, notes: list[Path]) -> list[tuple[int, dict, float]]:
    """All submissions at once: one thread and one connection each, released together by a barrier."""
    barrier = threading.Barrier(len(notes))

    def one(path: Path) -> tuple[int, dict, float]:
        data = path.read_bytes()
        with client_for(server, timeout=300.0) as client:
            client.get("/healthz")  # connect before the barrier, so the burst is the requests themselves
            barrier.wait()
            t0 = time.perf_counter()
            try:
                r = client.post(
                    "/v1/conversions",
                    files={"file": (path.name, data, "application/octet-stream")},
                    data={"voice": "ayana"},
                )
            except httpx.HTTPError as e:
                return -1, {"error": type(e).__name__, "message": str(e)}, time.perf_counter() - t0
            try:
                body = r.json()
            except ValueError:
                body = {"text": r.text[:200]}
            return r.status_code, body, time.perf_counter() - t0

    with ThreadPoolExecutor(len(notes)) as pool:
        return list(pool.map(one, notes))


def most_active_at_once(rows: list[dict]) -> int:
    """Largest number of jobs that were queued or running at the same moment (created .. finished)."""
    marks = []
    for r in rows:
        marks += [(r["created"], 1), (r["updated"] if r["state"] in FINISHED else math.inf, -1)]
    best = now = 0
    for _, step in sorted(marks, key=lambda m: (m[0], m[1])):
        now += step
        best = max(best, now)
    return best


def phase_burst(args, work: Path) -> dict:
    home, media = work / "burst-home", work / "burst-media"
    media.mkdir()
    notes = voice_notes(media, args.burst, 2.0, seed0=100)
    server = Server(home, dict(LIMITS), work / "burst-server.log").start()
    load0, start = loadavg(), time.time()
    answers = fire(server, notes)
    codes = Counter(a[0] for a in answers)
    refusals = Counter(a[1].get("error", "?") for a in answers if a[0] == 429)
    ids = [a[1]["job_id"] for a in answers if a[0] == 202]
    with client_for(server) as client:
        seen = follow(client, ids, args.drain_timeout)
        counters = metrics(client)
    rows = jobs_db(home)
    server.stop()
    done = [i for i, j in seen["final"].items() if j["state"] == "done"]
    ends = [r["updated"] for r in rows if r["state"] == "done"]
    referenced = {Path(json.loads(r["request"])["input"]).name for r in rows}
    uploads = {p.name for p in (home / "uploads").iterdir()} if (home / "uploads").is_dir() else set()
    other = {str(c): n for c, n in codes.items() if c not in (202, 429)}
    lost = len(seen["lost"]) + len(seen["unfinished"]) + len(set(ids) - {r["id"] for r in rows})
    res = {
        "submitted": len(notes),
        "accepted_202": codes.get(202, 0),
        "refused_429": codes.get(429, 0),
        "refusal_codes": dict(refusals),
        "other": other,
        "other_examples": [a[1] for a in answers if a[0] not in (202, 429)][:3],
        "submit_latency_ms": percentiles([a[2] * 1000 for a in answers]),
        "lost": lost,
        "done": len(done),
        "failed": [j["error"] for j in seen["final"].values() if j["state"] == "failed"][:3],
        "seconds_to_drain": round(max(ends) - start, 2) if ends else None,
        "follow_429s": seen["limited"],
        "follow_errors": seen["errors"],
        "db_rows": len(rows),
        "most_active_at_once": most_active_at_once(rows),
        "max_jobs_per_key": int(LIMITS["SINGER_MAX_JOBS_PER_KEY"]),
        "rate_limit_per_min": int(LIMITS["SINGER_RATE_LIMIT"]),
        "uploads_on_disk": len(uploads),
        "uploads_without_job": len(uploads - referenced),
        "load_avg_before": load0,
        "load_avg_after": loadavg(),
        "server_requests": counters,
        "server_log": log_problems(server.log),
        "goal": {"only_202_or_429": True, "lost": 0, "all_accepted_done": True},
    }
    res["meets"] = not other and lost == 0 and len(done) == len(ids)
    return res


# ---- phase 3: crash and restart -------------------------------------------------------------------------------------
def wait_for_kill_moment(home: Path, timeout: float) -> bool:
    """True once jobs.db shows a job running with progress > 0 while another is queued."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = jobs_db(home)
        running = [r for r in rows if r["state"] == "running" and r["progress"] > 0]
        if running and any(r["state"] == "queued" for r in rows):
            return True
        time.sleep(0.05)
    return False


def phase_crash(args, work: Path) -> dict:
    home, media = work / "crash-home", work / "crash-media"
    media.mkdir()
    notes = voice_notes(media, args.crash_jobs, args.crash_note_seconds, seed0=200)
    env = dict(LIMITS, SINGER_MAX_JOBS_PER_KEY=str(max(20, args.crash_jobs)))
    log = work / "crash-server.log"
    first = Server(home, env, log).start()
    load0 = loadavg()
    with client_for(first) as client:
        answers = [submit(client, p) for p in notes]
    ids = [r.json()["job_id"] for r in answers if r.status_code == 202]
    moment = wait_for_kill_moment(home, 120.0)
    first.crash()
    at_kill = jobs_db(home)
    restart = time.time()
    second = Server(home, env, log).start()
    with client_for(second) as client:
        seen = follow(client, ids, args.drain_timeout)
        counters = metrics(client)
    rows = {r["id"]: r for r in jobs_db(home)}
    second.stop()
    done = [i for i in ids if seen["final"].get(i, {}).get("state") == "done"]
    ran_again = [i for i in ids if rows.get(i, {}).get("attempts", 0) > 1]
    ends = [rows[i]["updated"] for i in done]
    res = {
        "submitted": len(notes),
        "accepted_202": len(ids),
        "note_seconds": args.crash_note_seconds,
        "killed_mid_job": moment,
        "states_at_kill": dict(Counter(r["state"] for r in at_kill)),
        "progress_of_running_at_kill": [round(r["progress"], 3) for r in at_kill if r["state"] == "running"],
        "done_after_restart": len(done),
        "ran_again": len(ran_again),
        "attempts": dict(Counter(rows[i]["attempts"] for i in ids if i in rows)),
        "requeued_events": requeued_events(home),
        "lost": len(seen["lost"]) + len(seen["unfinished"]),
        "failed": [j["error"] for j in seen["final"].values() if j["state"] == "failed"][:3],
        "seconds_restart_to_drained": round(max(ends) - restart, 2) if ends else None,
        "load_avg_before": load0,
        "load_avg_after": loadavg(),
        "server_requests_after_restart": counters,
        "server_log": log_problems(log),
        "goal": {"done": len(notes)},
    }
    res["meets"] = len(done) == len(notes)
    return res


# ---- main -----------------------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 10 s polling, burst of 10, 4 crash jobs")
    ap.add_argument("--poll-seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=200.0, help="status requests per second")
    ap.add_argument("--idle-seconds", type=float, default=10.0, help="baseline polling while the worker is idle")
    ap.add_argument("--threads", type=int, default=16, help="polling client threads (one keep-alive connection each)")
    ap.add_argument(
        "--long-seconds", type=float, default=600.0, help="length of each long upload keeping the worker busy"
    )
    ap.add_argument("--long-jobs", type=int, default=0, help="long uploads queued (default: enough for the polling)")
    ap.add_argument("--burst", type=int, default=50)
    ap.add_argument("--crash-jobs", type=int, default=10)
    ap.add_argument("--crash-note-seconds", type=float, default=8.0)
    ap.add_argument("--drain-timeout", type=float, default=900.0, help="seconds to wait for accepted jobs to finish")
    ap.add_argument("--phases", default="polling,burst,crash")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (homes, logs) and print its path")
    args = ap.parse_args()
    if args.quick:
        args.poll_seconds, args.idle_seconds = min(args.poll_seconds, 10.0), min(args.idle_seconds, 3.0)
        args.burst, args.crash_jobs = min(args.burst, 10), min(args.crash_jobs, 4)
    return args


def environment(work: Path) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    return {
        "cpu_count": os.cpu_count(),
        "load_avg_start": loadavg(),
        "python": sys.version.split()[0],
        "httpx": httpx.__version__,
        "commit": commit.strip(),
        "workdir": str(work),
        "server": "python -m singer serve --host 127.0.0.1 --port <free>, embedded worker (1 job at a time), "
        "inherited SINGER_* variables removed",
        "note": "client and server share the machine; other work on it shows in the load averages",
    }


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below still stops the servers
    work = Path(tempfile.mkdtemp(prefix="singer-bench-http-"))
    res: dict = {"benchmark": "http", "quick": args.quick, "environment": environment(work)}
    phases = {"polling": phase_polling, "burst": phase_burst, "crash": phase_crash}
    try:
        for name in args.phases.split(","):
            t0 = time.perf_counter()
            try:
                res[name] = phases[name.strip()](args, work)
            except Exception as e:  # report the phase as failed, carry on with the others
                res[name] = {"error": f"{type(e).__name__}: {e}"[:2000], "meets": False}
            res[name]["phase_wall_s"] = round(time.perf_counter() - t0, 1)
            stop_all()
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    res["meets"] = {n: res[n]["meets"] for n in phases if n in res}
    res["environment"]["load_avg_end"] = loadavg()
    print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
