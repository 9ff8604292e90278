"""Pure units: normalising names, tax ids and email domains, and scoring/deciding pairs.
No database. Property tests (hypothesis) where a rule must hold for every input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.customers.normalise import Profile, email_domain, fold, name_key, tax_id
from sync.customers.scoring import Candidate, decide, score_pair

WEIGHTS = {"name": 0.55, "tax_id": 0.25, "email_domain": 0.10, "country": 0.10}
CAP = 50.0
SUFFIXES = ["GmbH", "G.m.b.H.", "gmbh", "AG", "Inc.", "Inc", "LLC", "Ltd", "Ltd.", "Limited", "S.A.", "B.V.", "Corp.", "Corporation"]
# name words that cannot spell a legal form themselves (no plain vowels), with accents
words = st.text(alphabet="bdfjqvwxyzñÿ", min_size=3, max_size=10)  # no vowels: cleanco knows "oao", "bhd", "kft"…


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("ACME GmbH", "acme"),
        ("Acme, G.m.b.H.", "acme"),
        ("The Acme Company Inc.", "acme company"),
        ("Müller & Söhne GmbH & Co. KG", "muller and sohne"),
        ("Société Générale S.A.", "societe generale"),
        ("Hooli, Inc.", "hooli"),
        ("  Initech   LLC ", "initech"),
        ("AG", "ag"),  # a name that is only a legal form keeps it
        ("", ""),
    ],
)
def test_name_keys(raw, key):
    assert name_key(raw) == key


@given(st.lists(words, min_size=1, max_size=3), st.sampled_from(SUFFIXES), st.sampled_from(["", ",", "."]))
@settings(max_examples=200, deadline=None)
def test_case_punctuation_and_a_legal_suffix_never_change_the_key(tokens, suffix, punct):
    base = " ".join(tokens)
    plain = name_key(base)
    assert plain == fold(base)
    assert name_key(f"{base}{punct} {suffix}") == plain
    assert name_key(f"{base.upper()}{punct} {suffix}") == plain
    assert name_key(f"  {base.title()}{punct}   {suffix} ") == plain


@given(st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_a_key_is_always_folded_and_stable(text):
    key = name_key(text)
    assert key == key.strip() and "  " not in key
    assert key == key.casefold() or not key
    assert name_key(key) == name_key(key)  # deterministic
    assert fold(fold(text)) == fold(text)


@pytest.mark.parametrize(
    ("raw", "country", "key"),
    [
        ("DE136695976", "", "DE136695976"),
        ("de 136 695 976", "", "DE136695976"),
        ("136695976", "DE", "DE136695976"),
        ("DE-136.695.976", "", "DE136695976"),
        ("GB980780684", "", "GB980780684"),
        ("980 7806 84", "GB", "GB980780684"),
        ("12-3456789", "", "US123456789"),
        ("123456789", "US", "US123456789"),
        ("EL094259216", "", "EL094259216"),
    ],
)
def test_valid_tax_ids_compact_to_one_key(raw, country, key):
    tax = tax_id(raw, country)
    assert tax.valid and tax.key == key


@pytest.mark.parametrize(("raw", "country"), [("DE123456789", ""), ("123456789", "DE"), ("12345", ""), ("XX12345", "")])
def test_invalid_or_unplaceable_tax_ids_are_not_keys(raw, country):
    tax = tax_id(raw, country)
    assert not tax.valid and tax.problem


@given(st.integers(min_value=0, max_value=99999999))
@settings(max_examples=200, deadline=None)
def test_a_german_vat_is_a_key_only_with_its_check_digit(body):
    from stdnum.eu import vat

    number = f"DE{body + 100000000:09d}"[:11]
    assert tax_id(number).valid == vat.is_valid(number)


def test_free_mail_and_placeholders_are_not_company_domains():
    assert email_domain("AP@Acme.COM").key == "acme.com"
    assert email_domain("someone@gmail.com").free and email_domain("x@outlook.com").free and email_domain("x@gmx.de").free
    assert email_domain("ap@example.com").free
    assert email_domain("not an email") is None


def profile(name, **kw):
    return Profile.of(name=name, **kw)


def test_same_vat_and_name_up_to_suffix_scores_100():
    pair = score_pair(
        profile("ACME GmbH", tax_id_raw="DE136695976", country="DE"),
        profile("Acme, G.m.b.H.", tax_id_raw="de136695976", country="DE"),
        weights=WEIGHTS,
        number_cap=CAP,
    )
    assert pair.score == 100 and pair.agree == {"tax_id"} and not pair.disagree
    assert {f.field: f.comparison for f in pair.fields} == {"name": "same", "tax_id": "same", "country": "same"}


def test_differing_numbers_cap_the_name():
    pair = score_pair(profile("Globex Dynamics 472"), profile("Globex Dynamics 473"), weights=WEIGHTS, number_cap=CAP)
    assert pair.score == CAP


def test_missing_fields_do_not_count_and_free_mail_is_not_evidence():
    pair = score_pair(profile("Initech", email="a@gmail.com"), profile("Initech", email="b@gmail.com"), weights=WEIGHTS, number_cap=CAP)
    assert pair.score == 100 and pair.agree == frozenset()
    (mail,) = [f for f in pair.fields if f.field == "email_domain"]
    assert mail.comparison == "not a key" and mail.score is None


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_scores_are_symmetric_in_the_name_and_within_0_100(a, b):
    ab = score_pair(profile(a), profile(b), weights=WEIGHTS, number_cap=CAP)
    ba = score_pair(profile(b), profile(a), weights=WEIGHTS, number_cap=CAP)
    assert 0 <= ab.score <= 100 and ab.score == ba.score


def cand(name, other, *, same_system=(), **kw):
    a, b = profile(name, **kw), profile(other, **kw)
    return Candidate(other, b, score_pair(a, b, weights=WEIGHTS, number_cap=CAP), tuple(same_system))


def test_three_outcomes():
    assert decide([], auto_link=92, review=75).outcome == "new"
    assert decide([cand("Globex Dynamics 472", "Globex Dynamics 473")], auto_link=92, review=75).outcome == "new"
    linked = decide([cand("ACME GmbH", "Acme AG", tax_id_raw="DE136695976")], auto_link=92, review=75)
    assert linked.outcome == "auto_linked"
    same_system = decide([cand("ACME GmbH", "Acme AG", tax_id_raw="DE136695976", same_system=("001A",))], auto_link=92, review=75)
    assert same_system.outcome == "review" and same_system.error_class == "conflict"
    name_only = decide([cand("Initech", "Initech")], auto_link=92, review=75)
    assert name_only.outcome == "review" and name_only.error_class == "duplicate"
    assert any("a name alone never links" in r for r in name_only.reasons)


@given(st.floats(min_value=0, max_value=100), st.floats(min_value=0, max_value=100))
def test_auto_link_needs_a_unique_candidate(s1, s2):
    from sync.customers.scoring import PairScore

    def c(i, s):
        return Candidate(i, profile("x"), PairScore(round(s, 1), (), frozenset({"tax_id"}), frozenset()))

    decision = decide([c(1, s1), c(2, s2)], auto_link=92, review=75)
    assert decision.outcome != "auto_linked"  # both are considered: a strong key agrees on each
