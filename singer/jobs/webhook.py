"""Webhooks: a signed POST to the job's ``callback_url`` when it ends, retried with backoff.

The body is the job's public JSON. ``X-Singer-Signature: sha256=<hex>`` is HMAC-SHA256 over
``"<X-Singer-Timestamp>.<body>"`` with ``SINGER_WEBHOOK_SECRET``, so a receiver can check both origin and age.
Targets obey the same URL policy as song URLs (http(s) only; loopback/private/link-local refused unless
allowed by ``SINGER_ALLOW_PRIVATE_URLS`` or listed in ``SINGER_URL_ALLOW``): checked before every attempt, and every
attempt runs inside :func:`singer.netguard.guarded`, so the connection itself goes only to a checked address (a
name that resolves elsewhere the second time is refused). Redirects are not followed. Delivery never raises: any
failure, a URL the HTTP client cannot even parse included, is an outcome with ``delivered: False`` and a reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any

from ..engines.sources.urls import check_url
from ..errors import NetworkUnavailable, SourceError
from ..netguard import guarded
from ..netpolicy import Policy


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a 3xx is an answer, not an instruction to post elsewhere


def deliver(
    url: str,
    event: str,
    payload: dict,
    secret: str,
    *,
    allow_private: Any = False,
    allow: str | None = None,
    attempts: int = 4,
    backoff: float = 2.0,
    timeout: float = 10.0,
    key: str = "job",
) -> dict:
    """POST until a 2xx answer or ``attempts`` run out. Returns {"delivered", "attempts", "status", "reason"}.

    ``allow_private`` is the settings, a :class:`~singer.netpolicy.Policy` or a bool (the allow-list then comes from
    ``allow`` or ``SINGER_URL_ALLOW``). A URL the policy refuses ends delivery at once; nothing here raises.
    """
    status, reason = None, ""
    try:
        policy = Policy.of(allow_private, allow)
        body = json.dumps({"event": event, key: payload}, sort_keys=True).encode()  # {"event", "job"|"batch"}
        opener = urllib.request.build_opener(_NoRedirects())
    except Exception as e:  # a bad allow-list, a payload that is not JSON: an outcome, not a crash
        return {"delivered": False, "attempts": 0, "status": None, "reason": _why(e)}
    for n in range(1, attempts + 1):
        ts = str(int(time.time()))
        try:
            check_url(url, policy)
            req = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "singer-webhook/1",
                    "X-Singer-Event": event,
                    "X-Singer-Timestamp": ts,
                    "X-Singer-Signature": signature(secret, ts, body),
                },
            )
            with guarded(policy, url), opener.open(req, timeout=timeout) as r:
                status, reason = r.status, ""
        except urllib.error.HTTPError as e:
            status, reason = e.code, f"HTTP {e.code}"
        except NetworkUnavailable as e:  # the name did not resolve: may be temporary
            status, reason = None, e.user_message
        except SourceError as e:  # refused by the URL policy, or a URL that cannot work: retrying will not help
            return {"delivered": False, "attempts": n, "status": None, "reason": e.user_message}
        except Exception as e:  # noqa: BLE001 - whatever urllib raises for an odd URL is a failed attempt
            status, reason = None, _why(e)
        if status is not None and 200 <= status < 300:
            return {"delivered": True, "attempts": n, "status": status, "reason": ""}
        if n < attempts:
            time.sleep(backoff * 2 ** (n - 1))
    return {"delivered": False, "attempts": attempts, "status": status, "reason": reason}


def _why(e: BaseException) -> str:
    return str(getattr(e, "user_message", None) or getattr(e, "reason", None) or e) or type(e).__name__
