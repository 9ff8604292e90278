"""Webhook subscriptions and change notifications, as Business Central sends them.

    POST   /api/v2.0/subscriptions            {notificationUrl, resource, clientState} → 201
    GET    /api/v2.0/subscriptions[('id')]
    PATCH  /api/v2.0/subscriptions('id')      If-Match required; renews (3 more days)
    DELETE /api/v2.0/subscriptions('id')      → 204

Creating and renewing call `notificationUrl?validationToken=<token>` (POST, empty body) and
require 200 with exactly the token as the body; otherwise the subscription is refused.

Every committed change of a subscribed entity set (a line's change counts for its document)
becomes a pending Notification. `deliver()` — `POST /__sandbox__/notifications/deliver`, called by
tests and the demo — sends the pending ones older than the delay (BC: 30 s), grouped by
notificationUrl, one notification per changed resource: `{"value": [{subscriptionId, clientState,
expirationDateTime, resource, changeType, lastModifiedDateTime}]}` with no record in it. More than
`collection_threshold` changes for one subscription become one `collection` notification whose
resource is a filtered collection. A subscriber answering 408, 429 or 5xx (or unreachable) is
tried again later for up to 36 hours; any other non-2xx answer deletes the subscription.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import timedelta

import requests
from django.db import transaction
from django.utils import timezone

from sandboxes.db import DB

from .errors import BCError
from .models import Company, Notification, Subscription

RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
_RESOURCE = re.compile(r"^/?api/v2\.0/companies\((?P<company>[0-9a-fA-F-]{36})\)/(?P<entity_set>[A-Za-z]+)$")
HANDSHAKE_TIMEOUT = 10.0


def etag(sub: Subscription) -> str:
    return f'W/"JzE7{sub.version}{sub.subscription_id[:8]}Oyc="'


def render(sub: Subscription) -> dict:
    return {
        "@odata.etag": etag(sub),
        "subscriptionId": sub.subscription_id,
        "notificationUrl": sub.notification_url,
        "resource": sub.resource,
        "userId": str(sub.user_id),
        "lastModifiedDateTime": sub.last_modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "clientState": sub.client_state,
        "expirationDateTime": sub.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "systemCreatedAt": sub.created_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "systemModifiedAt": sub.last_modified.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }


def record_change(company: Company, entity_set: str, guid: str, change_type: str, at) -> None:
    """A pending notification per live subscription to this company's entity set."""
    now = timezone.now()
    subs = Subscription.objects.filter(company=company, entity_set=entity_set, expires_at__gt=now)
    Notification.objects.bulk_create(
        [
            Notification(subscription=sub, resource=f"api/v2.0/companies({company.id})/{entity_set}({guid})", change_type=change_type, changed_at=at or now)
            for sub in subs
        ]
    )


def handshake(url: str) -> None:
    """Call url?validationToken=…; BCError unless it answers 200 with the token."""
    token = secrets.token_urlsafe(24)
    try:
        response = requests.post(url, params={"validationToken": token}, timeout=HANDSHAKE_TIMEOUT)
    except requests.RequestException as exc:
        raise BCError(
            400, "BadRequest_InvalidOperation", f"The subscription could not be validated: the notification URL could not be reached ({type(exc).__name__})."
        ) from exc
    if response.status_code != 200 or response.text.strip() != token:
        raise BCError(
            400,
            "BadRequest_InvalidOperation",
            f"The subscription could not be validated: the notification URL answered {response.status_code} without the validation token.",
        )


def _target(resource: str, supported: frozenset[str]) -> tuple[Company, str]:
    match = _RESOURCE.match(str(resource or "").strip())
    company = Company.objects.filter(id=match["company"]).first() if match else None
    if match is None or company is None or match["entity_set"] not in supported:
        raise BCError(400, "BadRequest_InvalidRequestUrl", f"The resource '{resource}' is not a webhook-supported resource of this environment.")
    return company, match["entity_set"]


def _check_body(body: dict) -> None:
    unknown = set(body) - {"notificationUrl", "resource", "clientState", "@odata.etag", "subscriptionId"}
    if unknown:
        raise BCError(400, "BadRequest_InvalidRequestUrl", f"The property '{sorted(unknown)[0]}' does not exist on type 'Microsoft.NAV.subscriptions'.")
    if not isinstance(body.get("notificationUrl"), str) or not body["notificationUrl"].startswith(("http://", "https://")):
        raise BCError(400, "BadRequest_RequiredParamNotProvided", "Field 'notificationUrl' must not be blank or empty.")
    if len(str(body.get("clientState") or "")) > 2048:
        raise BCError(400, "Application_StringExceededLength", "The length of the string is more than 2048 characters. Value: clientState")


def create(body: dict, *, supported: frozenset[str], lifetime_seconds: int) -> Subscription:
    _check_body(body)
    company, entity_set = _target(body.get("resource", ""), supported)
    handshake(body["notificationUrl"])
    now = timezone.now()
    return Subscription.objects.create(
        subscription_id=uuid.uuid4().hex,
        company=company,
        entity_set=entity_set,
        notification_url=body["notificationUrl"],
        resource=body["resource"],
        client_state=str(body.get("clientState") or ""),
        expires_at=now + timedelta(seconds=lifetime_seconds),
        last_modified=now,
    )


def renew(sub: Subscription, body: dict, *, if_match: str, supported: frozenset[str], lifetime_seconds: int) -> Subscription:
    if not if_match:
        raise BCError(
            400,
            "BadRequest_InvalidToken",
            "Could not validate the client concurrency token required by the service. Please provide a valid token in the client request.",
        )
    if if_match != "*" and if_match != etag(sub):
        raise BCError(409, "Request_EntityChanged", "Another user has already changed the record.")
    merged = {"notificationUrl": sub.notification_url, "resource": sub.resource, "clientState": sub.client_state, **body}
    _check_body(merged)
    company, entity_set = _target(merged["resource"], supported)
    handshake(merged["notificationUrl"])
    now = timezone.now()
    with transaction.atomic(using=DB):
        locked = Subscription.objects.select_for_update().get(pk=sub.pk)
        if if_match != "*" and locked.version != sub.version:
            raise BCError(409, "Request_EntityChanged", "Another user has already changed the record.")
        locked.notification_url, locked.resource, locked.client_state = merged["notificationUrl"], merged["resource"], str(merged.get("clientState") or "")
        locked.company, locked.entity_set = company, entity_set
        locked.expires_at, locked.last_modified, locked.version = now + timedelta(seconds=lifetime_seconds), now, locked.version + 1
        locked.save()
    return locked


def deliver(*, delay_seconds: int, collection_threshold: int, retry_hours: int, timeout: float = 10.0) -> dict:
    """Send what is due; returns counts and the subscriptions deleted."""
    now = timezone.now()
    pending = list(
        Notification.objects.filter(delivered_at__isnull=True, changed_at__lte=now - timedelta(seconds=delay_seconds))
        .exclude(next_attempt_at__gt=now)
        .select_related("subscription")
        .order_by("changed_at", "id")
    )
    by_url: dict[str, dict[int, list[Notification]]] = {}
    for note in pending:
        if note.subscription.expires_at <= now:
            note.delete()
            continue
        by_url.setdefault(note.subscription.notification_url, {}).setdefault(note.subscription_id, []).append(note)
    summary = {"sent": 0, "notifications": 0, "retrying": 0, "deleted_subscriptions": []}
    for url, per_sub in by_url.items():
        items, notes = [], []
        for sub_notes in per_sub.values():
            sub = sub_notes[0].subscription
            items.extend(_items(sub, sub_notes, collection_threshold))
            notes.extend(sub_notes)
        try:
            response = requests.post(url, json={"value": items}, timeout=timeout)
            status = response.status_code
        except requests.RequestException:
            status = None
        ids = [n.pk for n in notes]
        if status is not None and 200 <= status < 300:
            Notification.objects.filter(pk__in=ids).update(delivered_at=now, last_status=status)
            summary["sent"] += 1
            summary["notifications"] += len(items)
        elif status is None or status in RETRY_STATUSES:
            for note in notes:
                first = note.first_attempt_at or now
                if now - first > timedelta(hours=retry_hours):
                    note.delete()
                    continue
                attempts = note.attempts + 1
                Notification.objects.filter(pk=note.pk).update(
                    attempts=attempts, first_attempt_at=first, next_attempt_at=now + timedelta(seconds=min(3600, 2**attempts)), last_status=status
                )
            summary["retrying"] += len(items)
        else:  # any other answer: BC deletes the subscription
            gone = list(per_sub)
            summary["deleted_subscriptions"] += list(Subscription.objects.filter(pk__in=gone).values_list("subscription_id", flat=True))
            Subscription.objects.filter(pk__in=gone).delete()
    return summary


def _items(sub: Subscription, notes: list[Notification], collection_threshold: int) -> list[dict]:
    common = {"subscriptionId": sub.subscription_id, "clientState": sub.client_state, "expirationDateTime": sub.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    by_resource: dict[str, list[Notification]] = {}
    for note in notes:
        by_resource.setdefault(note.resource, []).append(note)
    if len(by_resource) > collection_threshold:
        earliest = min(n.changed_at for n in notes)
        return [
            {
                **common,
                "resource": f"api/v2.0/companies({sub.company_id})/{sub.entity_set}?$filter=lastModifiedDateTime%20gt%20{earliest.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                "changeType": "collection",
                "lastModifiedDateTime": max(n.changed_at for n in notes).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            }
        ]
    items = []
    for resource, changes in by_resource.items():
        kinds = [c.change_type for c in changes]
        kind = "deleted" if kinds[-1] == "deleted" else ("created" if kinds[0] == "created" else "updated")
        items.append(
            {**common, "resource": resource, "changeType": kind, "lastModifiedDateTime": changes[-1].changed_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
        )
    return items
