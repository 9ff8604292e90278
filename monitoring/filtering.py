"""FilterSets read from a query string the way the portal's lists read it.

One django-filter FilterSet per list, shared by the list's page and its API. On top of
django-filter, a `QueryFilterSet`:

- takes every parameter as text: one left out takes its default (`defaults`); values are
  stripped and cut to `max_length`;
- drops a value that does not validate back to its default and names it in `invalid`
  ({name: message}): a page filters without it and says so, an API refuses the request (400),
  and a saved link never turns into a wider filter than it says;
- keeps the values in use (defaults included) in `data`, so a template shows the form as
  filtered, and gives the link back with `querystring()`: the parameters that differ from their
  defaults, in `query_order`, so saved views and bulk-job snapshots keep reading the same.

Filters apply in declaration order, which is the order of the conditions in the SQL.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlencode

import django_filters
from django.core.exceptions import ValidationError


class QueryFilterSet(django_filters.FilterSet):
    defaults: ClassVar[dict[str, str]] = {}
    query_order: ClassVar[tuple[str, ...]] = ()  # parameter order in links (default: declaration order)
    report_order: ClassVar[tuple[str, ...]] = ()  # the order `invalid` names problems in (default: link order)
    max_length: ClassVar[int | None] = None

    def __init__(self, data=None, queryset=None, *, request=None):
        params = data if data is not None else {}
        values = {name: self._text(params.get(name, self.defaults.get(name, ""))) for name in self.base_filters}
        super().__init__(values, queryset, request=request)
        self.invalid: dict[str, str] = {}
        for name in dict.fromkeys([*self.report_order, *self.param_names()]):
            try:
                self.filters[name].field.clean(values[name])
            except ValidationError as error:
                self.invalid[name] = error.messages[0]
                values[name] = self.defaults.get(name, "")
        self.data = values  # what the form validates and filters by: every value valid now

    @classmethod
    def param_names(cls) -> list[str]:
        """The parameters this list understands, in link order."""
        return list(cls.query_order) or list(cls.base_filters)

    def _text(self, value) -> str:
        value = (value if isinstance(value, str) else str(value)).strip()
        return value[: self.max_length] if self.max_length else value

    def as_query(self) -> dict[str, str]:
        """Only the parameters that differ from the defaults."""
        return {name: self.data[name] for name in self.param_names() if self.data[name] and self.data[name] != self.defaults.get(name, "")}

    def querystring(self) -> str:
        return urlencode(self.as_query())

    @property
    def user(self):
        """Who is looking (for filters such as assignee=me); None without a request."""
        return getattr(self.request, "user", None)
