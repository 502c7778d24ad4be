"""Real processes for end-to-end tests: free ports, waiting, `python -m singer ...` children."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str):
    """Call ``check`` until it returns something true (connection errors count as not yet)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if out := check():
                return out
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def spawn_singer(args: list[str], env: dict, log) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.getcwd(), **env}
    return subprocess.Popen([sys.executable, "-m", "singer", *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def job_done(client: httpx.Client, job_id: str):
    job = client.get(f"/v1/jobs/{job_id}").json()
    return job if job["state"] in ("done", "failed") else None


def children(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (read from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out
