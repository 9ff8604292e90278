"""What every portal page shares: the permission check, the capped pager, and rendering one
template as a whole page or, for htmx, as the named partial the request swaps.

Each page is one template; its swappable regions are named partials (`page.html#table`).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.functional import cached_property

PAGE_SIZE = 25


def portal_page(perm: str):
    """Login required, then the permission, else 403 (never a redirect loop to login)."""

    def decorate(view):
        return login_required(permission_required(perm, raise_exception=True)(view))

    return decorate


class CappedPaginator(Paginator):
    """Counts at most `cap` rows: an unfiltered list of a year's orders would otherwise count
    400k rows on every page view. Past the cap the pager says "2,000+" and offers the first
    2,000 rows; narrowing the window or the filters gives exact figures again."""

    cap = 2_000

    @cached_property
    def _counted(self) -> int:
        return self.object_list[: self.cap + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.cap)

    @property
    def capped(self) -> bool:
        return self._counted > self.cap


def paginate(request: HttpRequest, queryset):
    """The requested page (?page=) of 25 rows, counted up to the cap."""
    paginator = CappedPaginator(queryset, PAGE_SIZE)
    return paginator.get_page(request.GET.get("page"))


def render_region(request: HttpRequest, template: str, context: dict, partial: str = "table") -> HttpResponse:
    """The whole page, or for htmx (not boosted) only `partial`."""
    if request.htmx and not request.htmx.boosted:
        return render(request, f"{template}#{partial}", context)
    return render(request, template, context)


def render_dashboard(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    """Full page, or for htmx the partial the request targets: the flow table or the dashboard."""
    if request.htmx and not request.htmx.boosted:
        partial = "table" if request.htmx.target == "table" else "dashboard"
        return render(request, f"{template}#{partial}", context)
    return render(request, template, context)
