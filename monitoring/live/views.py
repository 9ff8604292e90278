"""The outage banner as its own small region: every page includes it and htmx refreshes it, so an
outage that starts or ends while a page is open shows without a reload."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@login_required
@require_GET
def outage_banner(request: HttpRequest) -> HttpResponse:
    """The banner region (the context processor puts the outages in the context); every role."""
    return render(request, "components/_outage_banner.html")
