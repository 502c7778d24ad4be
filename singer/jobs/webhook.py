"""Webhooks: a signed POST to the job's ``callback_url`` when it ends, retried with backoff.

The body is the job's public JSON. ``X-Singer-Signature: sha256=<hex>`` is HMAC-SHA256 over
``"<X-Singer-Timestamp>.<body>"`` with ``SINGER_WEBHOOK_SECRET``, so a receiver can check both origin and age.
Targets obey the same URL policy as song URLs (http(s) only; loopback/private/link-local refused unless
allowed), checked again before every attempt, and redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

from ..engines.sources.urls import check_url
from ..errors import SourceError


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a 3xx is an answer, not an instruction to post elsewhere


def deliver(url: str, event: str, payload: dict, secret: str, *, allow_private: bool = False, attempts: int = 4,
            backoff: float = 2.0, timeout: float = 10.0, key: str = "job") -> dict:
    """POST until a 2xx answer or ``attempts`` run out. Returns {"delivered", "attempts", "status", "reason"}."""
    body = json.dumps({"event": event, key: payload}, sort_keys=True).encode()  # {"event", "job"|"batch"}
    opener = urllib.request.build_opener(_NoRedirects())
    status, reason = None, ""
    for n in range(1, attempts + 1):
        ts = str(int(time.time()))
        try:
            check_url(url, allow_private)
            req = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json", "User-Agent": "singer-webhook/1", "X-Singer-Event": event,
                "X-Singer-Timestamp": ts, "X-Singer-Signature": signature(secret, ts, body)})
            with opener.open(req, timeout=timeout) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status, reason = e.code, f"HTTP {e.code}"
        except SourceError as e:  # refused by the URL policy: retrying will not help
            return {"delivered": False, "attempts": n, "status": None, "reason": e.user_message}
        except (urllib.error.URLError, OSError) as e:
            status, reason = None, str(getattr(e, "reason", e))
        if status is not None and 200 <= status < 300:
            return {"delivered": True, "attempts": n, "status": status, "reason": ""}
        if n < attempts:
            time.sleep(backoff * 2 ** (n - 1))
    return {"delivered": False, "attempts": attempts, "status": status, "reason": reason}
