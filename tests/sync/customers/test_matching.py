"""Matching arriving accounts against the canonical customers, on the real PostgreSQL:
the three outcomes, the blocks found by index, merge and unmerge, and races under the locks."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from sync.customers.matching import customer_for_account, find_candidates, record_profile
from sync.customers.merge import match_keep_separate, match_merge, match_unmerge, merge_customers, unmerge
from sync.models import AuditEntry, Customer, CustomerMatch, ExternalRef, Invoice, Order, Payment, Subscription
from tests.factories import LegalEntityFactory

VAT = "DE136695976"  # a valid German VAT number (check digit)
pytestmark = pytest.mark.django_db


@pytest.fixture
def de01(db):
    return LegalEntityFactory(code="DE01", name="Acme Deutschland GmbH", base_currency="EUR", erp_subsidiary_id="2")


def arrive(external_id: str, name: str, *, source: str = "salesforce", entity=None, **extra):
    account = {"external_id": external_id, "name": name, **extra}
    return customer_for_account(source=source, account=account, currency="EUR", entity=entity)


def refs_of(customer) -> set[tuple[str, str, str]]:
    return set(ExternalRef.objects.filter(canonical_type="customer", canonical_id=customer.pk).values_list("system", "object_type", "external_id"))


def test_a_new_account_with_no_lookalike_is_a_new_customer_with_its_keys_stored(de01):
    result = arrive("001A", "Müller & Söhne GmbH & Co. KG", entity=de01, tax_id="de 136 695 976", email="ap@mueller.example", country="DE")
    assert result.outcome == "new" and not result.needs_review
    c = Customer.objects.get(pk=result.customer.pk)
    assert (c.name_key, c.tax_key, c.email_domain, c.country) == ("muller and sohne", VAT, "mueller.example", "DE")
    assert c.field_sources["name"] == "salesforce:001A"
    assert refs_of(c) == {("salesforce", "Account", "001A")}
    assert CustomerMatch.objects.get().outcome == CustomerMatch.Outcome.NEW


def test_the_same_account_again_updates_its_customer_without_matching(de01):
    first = arrive("001A", "Initech GmbH", entity=de01)
    again = arrive("001A", "Initech GmbH (renamed)", entity=de01)
    assert again.outcome == "known" and again.customer.pk == first.customer.pk
    assert Customer.objects.get().name == "Initech GmbH (renamed)"
    assert CustomerMatch.objects.count() == 1


def test_two_accounts_differing_only_in_case_punctuation_and_legal_suffix_with_one_vat_are_one_conflict(de01):
    a = arrive("001A", "ACME GmbH", entity=de01, tax_id=VAT, country="DE")
    b = arrive("001B", "Acme, G.m.b.H.", entity=de01, tax_id=VAT.lower(), country="DE")
    assert a.outcome == "new" and b.outcome == "review" and b.needs_review
    match = b.match
    assert match.error_class == "conflict" and match.candidate_id == a.customer.pk and float(match.score) == 100.0
    evidence = {e["field"]: e for e in match.evidence}
    assert evidence["name"]["comparison"] == "same" and evidence["tax_id"]["comparison"] == "same" and evidence["country"]["comparison"] == "same"
    assert any("same system" in r for r in match.reasons)  # two Salesforce accounts: never merged without a person
    # a second flow for account B waits on the same review instead of opening another
    again = arrive("001B", "Acme, G.m.b.H.", entity=de01, tax_id=VAT)
    assert again.match.pk == match.pk and CustomerMatch.objects.filter(outcome="review").count() == 1

    merge = match_merge(match_id=match.pk, note="same company")
    assert Customer.objects.filter(merged_into__isnull=True).count() == 1
    survivor = Customer.objects.get(merged_into__isnull=True)
    assert survivor.pk == a.customer.pk
    assert refs_of(survivor) == {("salesforce", "Account", "001A"), ("salesforce", "Account", "001B")}
    assert arrive("001B", "Acme, G.m.b.H.", entity=de01).customer.pk == survivor.pk  # resumed flows land on the survivor
    survivor.refresh_from_db()
    assert survivor.name == "ACME GmbH"  # the merged-in account does not overwrite the survivor's values
    assert arrive("001A", "ACME Deutschland GmbH", entity=de01).customer.name == "ACME Deutschland GmbH"  # its own record still may

    match_unmerge(match_id=match.pk, note="they are two subsidiaries after all")
    merge.refresh_from_db()
    assert merge.unmerged_at is not None
    assert Customer.objects.filter(merged_into__isnull=True).count() == 2
    assert refs_of(Customer.objects.get(pk=a.customer.pk)) == {("salesforce", "Account", "001A")}
    assert refs_of(Customer.objects.get(pk=b.customer.pk)) == {("salesforce", "Account", "001B")}
    match.refresh_from_db()
    assert match.decision == CustomerMatch.Decision.UNMERGED
    actions = list(AuditEntry.objects.filter(object_type="customer").values_list("action", flat=True))
    assert {"match_review", "merge", "merged_into", "unmerge", "unmerged"} <= set(actions)


def test_a_lookalike_name_without_any_key_is_a_possible_duplicate(de01):
    arrive("001A", "Initech Systems AG", entity=de01)
    b = arrive("001B", "Initek Systems", entity=de01)
    assert b.outcome == "review" and b.match.error_class == "duplicate"
    assert 75 <= float(b.match.score) < 100


def test_names_whose_numbers_differ_are_different_customers(de01):
    arrive("001A", "Globex Dynamics 472", entity=de01, email="billing@globexdynamics472.example")
    b = arrive("001B", "Globex Dynamics 473", entity=de01, email="billing@globexdynamics473.example")
    assert b.outcome == "new"


def test_a_shared_valid_tax_id_is_never_silently_a_second_customer_even_with_other_names(de01):
    arrive("001A", "Acme Holding GmbH", entity=de01, tax_id=VAT)
    b = arrive("001B", "Zeta Vertrieb GmbH", entity=de01, tax_id=VAT)
    assert b.outcome == "review" and b.match.error_class == "conflict" and float(b.match.score) < 75


def test_an_invalid_tax_id_is_not_a_key(de01):
    arrive("001A", "Acme Holding GmbH", entity=de01, tax_id="DE123456789")  # fails the check digit
    b = arrive("001B", "Zeta Vertrieb GmbH", entity=de01, tax_id="DE123456789")
    assert b.outcome == "new"
    assert Customer.objects.filter(tax_key="").count() == 2


def test_a_record_from_another_system_with_agreeing_keys_is_linked_automatically(de01):
    a = arrive("001A", "ACME GmbH", entity=de01, tax_id=VAT, country="DE")
    other = arrive("acme-crm-2", "Acme G.m.b.H.", source="hubspot", entity=de01, tax_id=VAT, country="DE")
    assert other.outcome == "auto_linked" and other.customer.pk == a.customer.pk
    assert refs_of(a.customer) == {("salesforce", "Account", "001A"), ("hubspot", "Account", "acme-crm-2")}
    assert AuditEntry.objects.filter(object_type="customer", action="auto_linked", object_id=str(a.customer.pk)).exists()


def test_two_candidates_above_the_review_line_are_never_linked_automatically(de01):
    arrive("001A", "Acme GmbH", entity=de01, email="ap@acme.example")
    arrive("001B", "Acme AG", source="other-crm", entity=de01)
    many = arrive("x-1", "ACME", source="hubspot", entity=de01, email="ar@acme.example")
    assert many.outcome == "review" and len(many.match.candidates) == 2
    assert any("not unique" in r for r in many.match.reasons)


def test_differing_tax_ids_veto_the_link_and_usually_mean_a_new_customer(de01):
    arrive("001A", "Acme GmbH", entity=de01, tax_id=VAT, country="DE")
    gb = arrive("001B", "Acme Ltd", entity=de01, tax_id="GB980780684", country="GB")
    assert gb.outcome == "new"


def test_a_claimed_cross_system_id_finds_its_customer_whatever_the_name(de01):
    a = arrive("001A", "Acme GmbH", entity=de01)
    ExternalRef.objects.create(system="netsuite", object_type="customer", external_id="CUST-9", canonical_type="customer", canonical_id=a.customer.pk)
    profile = record_profile({"name": "Totally Different", "erp_customer_id": "CUST-9"})
    (candidate,) = find_candidates(profile, system="salesforce", object_type="Account")
    assert candidate.customer_id == a.customer.pk and "external_id" in candidate.pair.agree


def test_the_name_block_uses_the_trigram_index(de01):
    words = ["nova", "terra", "blue", "quantum", "apex", "lumen", "orbit", "vertex", "cobalt", "harbor"]
    Customer.objects.bulk_create(
        (Customer(name=f"x{i}", name_key=f"{words[i % 10]} {words[i // 10 % 10]} {words[i // 100 % 10]} {i}", currency="EUR") for i in range(20000)),
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sync_customer")
        cursor.execute(
            "EXPLAIN SELECT id FROM sync_customer WHERE merged_into_id IS NULL AND name_key %% %s ORDER BY similarity(name_key, %s) DESC LIMIT 20",
            ["acme", "acme"],
        )
        plan = "\n".join(r[0] for r in cursor.fetchall())
    assert "customer_name_key_trgm_idx" in plan, plan


def test_merge_moves_documents_and_unmerge_moves_back_exactly_those(de01):
    a = arrive("001A", "Acme GmbH", entity=de01).customer
    b = arrive("001X", "Hooli Deutschland GmbH", entity=de01, segment="Enterprise").customer
    Customer.objects.filter(pk=a.pk).update(segment="")
    order = Order.objects.create(number="ORD-B1", customer=b, currency="EUR")
    sub = Subscription.objects.create(customer=b, order=order, currency="EUR")
    inv = Invoice.objects.create(number="INV-B1", customer=b, currency="EUR")
    pay = Payment.objects.create(customer=b, invoice=inv, status="received", currency="EUR", occurred_at="2026-11-20T10:00:00Z")
    record = merge_customers(survivor_id=a.pk, merged_id=b.pk, note="test")
    assert {Order.objects.get(pk=order.pk).customer_id, Subscription.objects.get(pk=sub.pk).customer_id, Payment.objects.get(pk=pay.pk).customer_id} == {a.pk}
    a.refresh_from_db()
    assert a.segment == "Enterprise" and a.name == "Acme GmbH"  # blanks filled, the survivor's values kept
    later = Order.objects.create(number="ORD-A-LATER", customer=a, currency="EUR")  # arrived for the survivor after the merge
    unmerge(merge_id=record.pk, note="undo")
    assert Order.objects.get(pk=order.pk).customer_id == b.pk and Invoice.objects.get(pk=inv.pk).customer_id == b.pk
    assert Order.objects.get(pk=later.pk).customer_id == a.pk
    a.refresh_from_db()
    assert a.segment == "" and refs_of(a) == {("salesforce", "Account", "001A")}
    with pytest.raises(Exception, match="already undone"):
        unmerge(merge_id=record.pk)


def test_take_the_owners_value_prefers_the_system_that_owns_the_field(de01):
    crm = arrive("001A", "Acme Gmbh", entity=de01, tax_id=VAT).customer
    erp = arrive("C-1", "ACME GmbH", source="netsuite", entity=de01).customer  # the ERP owns the legal name
    assert erp.pk != crm.pk  # no key agrees (the ERP record has no tax id here): a person decides
    match = CustomerMatch.objects.get(outcome="review")
    match_merge(match_id=match.pk, rule="owner")
    survivor = Customer.objects.get(merged_into__isnull=True)
    assert survivor.name == "ACME GmbH" and survivor.field_sources["name"] == "netsuite:C-1"


def test_keep_separate_leaves_both_and_lets_the_account_through(de01):
    arrive("001A", "ACME GmbH", entity=de01, tax_id=VAT)
    b = arrive("001B", "Acme, G.m.b.H.", entity=de01, tax_id=VAT)
    match_keep_separate(match_id=b.match.pk, note="two legal entities sharing a VAT group")
    again = arrive("001B", "Acme, G.m.b.H.", entity=de01, tax_id=VAT)
    assert again.outcome == "known" and again.customer.pk == b.customer.pk
    assert Customer.objects.filter(merged_into__isnull=True).count() == 2
    with pytest.raises(Exception, match="already decided"):
        match_merge(match_id=b.match.pk)


@pytest.mark.django_db(transaction=True)
def test_racing_flows_for_lookalike_new_accounts_see_each_other(de01):
    """Two workers bring ACME GmbH and Acme, G.m.b.H. at the same instant: without the matching
    lock each would find no candidate and both would become new customers."""
    barrier = threading.Barrier(4)
    results, errors = [], []

    def run(ext, name):
        try:
            barrier.wait()
            results.append(arrive(ext, name, entity=de01, tax_id=VAT).outcome)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=run, args=args)
        for args in [("001A", "ACME GmbH"), ("001B", "Acme, G.m.b.H."), ("001A", "ACME GmbH"), ("001B", "Acme, G.m.b.H.")]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Customer.objects.count() == 2  # one per account, never two for the same account
    assert CustomerMatch.objects.filter(outcome="review").count() == 1
    assert sorted(results).count("new") == 1
