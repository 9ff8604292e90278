"""BC's request limit: 6,000 requests per 5-minute sliding window per user / service principal.

Counted per client (the token's appid) in one-second buckets; a request is refused, and not
counted, when the buckets of the last `window` seconds already hold `limit` requests. The refusal
is 429 with Retry-After: the seconds until the oldest counted second leaves the window. The
limit and window come from SandboxSettings so a test can reach them.
"""

from __future__ import annotations

import math
import time

from django.db import transaction
from django.db.models import F, Sum

from sandboxes.db import DB, connection

from .errors import BCError
from .models import RateWindow, SandboxSettings


def admit(client_id: str, config: SandboxSettings) -> None:
    """Count the request or raise BCError(429)."""
    now = time.time()
    second = int(now)
    window, limit = max(1, config.rate_limit_window_seconds), config.rate_limit_requests
    with transaction.atomic(using=DB):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"bc-sandbox-rate:{client_id}"])
        RateWindow.objects.filter(client_id=client_id, second__lte=second - window).delete()
        recent = RateWindow.objects.filter(client_id=client_id, second__gt=second - window)
        used = recent.aggregate(total=Sum("count"))["total"] or 0
        if used >= limit:
            oldest = recent.order_by("second").values_list("second", flat=True).first() or second
            retry_after = max(1, math.ceil(oldest + window - now))
            raise BCError(
                429,
                "Application_TooManyRequests",  # [U] the code is undocumented; the status and Retry-After are what clients act on
                f"Too many requests reached.  Actual ({used + 1}).  Maximum ({limit}).",
                {"Retry-After": str(retry_after)},
            )
        if not RateWindow.objects.filter(client_id=client_id, second=second).update(count=F("count") + 1):
            RateWindow.objects.create(client_id=client_id, second=second, count=1)
