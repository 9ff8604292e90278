"""The API v2.0 entity sets the sandbox serves: their fields (in BC's order), which are writable,
their types and lengths, their lines, bound actions and whether webhooks cover them.

Field types: text (Text[n]), code (Code[n]: stored upper-case), guid, date, decimal, int, bool,
enum (the option captions BC answers with). A field not listed is refused; a listed read-only
one too (BC: "Control 'X' is read-only"). Lengths follow the BC tables behind the API pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NULL_GUID = "00000000-0000-0000-0000-000000000000"
BLANK_DATE = "0001-01-01"


@dataclass(frozen=True)
class F:
    kind: str
    length: int = 0
    choices: tuple[str, ...] = ()
    writable: bool = True


def text(n: int, writable: bool = True) -> F:
    return F("text", n, writable=writable)


def code(n: int, writable: bool = True) -> F:
    return F("code", n, writable=writable)


GUID, DATE, DECIMAL, INT, BOOL = F("guid"), F("date"), F("decimal"), F("int"), F("bool")
RO_GUID, RO_DATE, RO_DECIMAL, RO_INT, RO_BOOL = (F(k, writable=False) for k in ("guid", "date", "decimal", "int", "bool"))
RO_DATETIME = F("datetime", writable=False)


def enum(*choices: str, writable: bool = True) -> F:
    return F("enum", choices=choices, writable=writable)


@dataclass(frozen=True)
class Spec:
    name: str  # entity set
    type_name: str  # the EDM type, for messages
    table: str  # the BC table, for messages ("The Customer does not exist.")
    fields: tuple[tuple[str, F], ...]
    methods: frozenset[str] = frozenset({"GET", "POST", "PATCH", "DELETE"})
    lines: str = ""  # navigation property of its lines / journal lines
    parent_key: str = ""  # on a line: the field naming its document (documentId, journalId)
    actions: frozenset[str] = frozenset()
    webhooks: bool = False
    field_map: dict[str, F] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "field_map", dict(self.fields))


ADDRESS = tuple(
    (name, text(n))
    for name, n in (
        ("sellToAddressLine1", 100),
        ("sellToAddressLine2", 50),
        ("sellToCity", 30),
        ("sellToCountry", 10),
        ("sellToState", 30),
        ("sellToPostCode", 20),
        ("billToAddressLine1", 100),
        ("billToAddressLine2", 50),
        ("billToCity", 30),
        ("billToCountry", 10),
        ("billToState", 30),
        ("billToPostCode", 20),
    )
)
TOTALS = (
    ("pricesIncludeTax", RO_BOOL),
    ("discountAmount", DECIMAL),
    ("discountAppliedBeforeTax", RO_BOOL),
    ("totalAmountExcludingTax", RO_DECIMAL),
    ("totalTaxAmount", RO_DECIMAL),
    ("totalAmountIncludingTax", RO_DECIMAL),
)
PARTY = (
    ("customerId", GUID),
    ("customerNumber", code(20)),
    ("customerName", text(100, writable=False)),
    ("billToName", text(100)),
    ("billToCustomerId", GUID),
    ("billToCustomerNumber", code(20)),
)
LINE_TYPES = ("Comment", "Account", "Item", "Resource", "Fixed Asset", "Charge")


def _line_fields(*extra: tuple[str, F]) -> tuple[tuple[str, F], ...]:
    return (
        ("documentId", RO_GUID),
        ("sequence", INT),
        ("itemId", GUID),
        ("accountId", GUID),
        ("lineType", enum(*LINE_TYPES)),
        ("lineObjectNumber", code(20)),
        ("description", text(100)),
        ("description2", text(50)),
        ("unitOfMeasureId", GUID),
        ("unitOfMeasureCode", code(10)),
        ("quantity", DECIMAL),
        ("unitPrice", DECIMAL),
        ("discountAmount", DECIMAL),
        ("discountPercent", DECIMAL),
        ("discountAppliedBeforeTax", RO_BOOL),
        ("amountExcludingTax", RO_DECIMAL),
        ("taxCode", code(20)),
        ("taxPercent", RO_DECIMAL),
        ("totalTaxAmount", RO_DECIMAL),
        ("amountIncludingTax", RO_DECIMAL),
        ("invoiceDiscountAllocation", RO_DECIMAL),
        ("netAmount", RO_DECIMAL),
        ("netTaxAmount", RO_DECIMAL),
        ("netAmountIncludingTax", RO_DECIMAL),
        *extra,
        ("itemVariantId", GUID),
        ("locationId", GUID),
    )


SPECS: dict[str, Spec] = {}


def _add(spec: Spec) -> Spec:
    SPECS[spec.name] = spec
    return spec


CUSTOMERS = _add(
    Spec(
        "customers",
        "customer",
        "Customer",
        (
            ("number", code(20)),
            ("displayName", text(100)),
            ("type", enum("Company", "Person")),
            ("addressLine1", text(100)),
            ("addressLine2", text(50)),
            ("city", text(30)),
            ("state", text(30)),
            ("country", code(10)),
            ("postalCode", code(20)),
            ("phoneNumber", text(30)),
            ("email", text(80)),
            ("website", text(80)),
            ("salespersonCode", code(20)),
            ("balanceDue", RO_DECIMAL),
            ("creditLimit", DECIMAL),
            ("taxLiable", BOOL),
            ("taxAreaId", GUID),
            ("taxAreaDisplayName", text(100, writable=False)),
            ("taxRegistrationNumber", text(20)),
            ("currencyId", GUID),
            ("currencyCode", code(10)),
            ("paymentTermsId", GUID),
            ("shipmentMethodId", GUID),
            ("paymentMethodId", GUID),
            ("blocked", enum(" ", "Ship", "Invoice", "All")),
            ("lastModifiedDateTime", RO_DATETIME),
        ),
        webhooks=True,
    )
)
ITEMS = _add(
    Spec(
        "items",
        "item",
        "Item",
        (
            ("number", code(20, writable=False)),
            ("displayName", text(100, writable=False)),
            ("type", enum("Inventory", "Service", "Non-Inventory", writable=False)),
            ("itemCategoryCode", code(20, writable=False)),
            ("blocked", RO_BOOL),
            ("unitPrice", RO_DECIMAL),
            ("priceIncludesTax", RO_BOOL),
            ("taxGroupCode", code(20, writable=False)),
            ("baseUnitOfMeasureCode", code(10, writable=False)),
            ("lastModifiedDateTime", RO_DATETIME),
        ),
        methods=frozenset({"GET"}),
        webhooks=True,
    )
)
CURRENCIES = _add(
    Spec(
        "currencies",
        "currency",
        "Currency",
        (
            ("code", code(10, writable=False)),
            ("displayName", text(30, writable=False)),
            ("symbol", text(10, writable=False)),
            ("amountDecimalPlaces", text(5, writable=False)),
            ("amountRoundingPrecision", RO_DECIMAL),
            ("lastModifiedDateTime", RO_DATETIME),
        ),
        methods=frozenset({"GET"}),
        webhooks=True,
    )
)
COMPANY_INFORMATION = _add(
    Spec(
        "companyInformation",
        "companyInformation",
        "Company Information",
        (
            ("displayName", text(100, writable=False)),
            ("addressLine1", text(100, writable=False)),
            ("city", text(30, writable=False)),
            ("country", code(10, writable=False)),
            ("currencyCode", code(10, writable=False)),
            ("currentFiscalYearStartDate", RO_DATE),
            ("lastModifiedDateTime", RO_DATETIME),
        ),
        methods=frozenset({"GET"}),
    )
)
SALES_ORDERS = _add(
    Spec(
        "salesOrders",
        "salesOrder",
        "Sales Header",
        (
            ("number", code(20, writable=False)),
            ("externalDocumentNumber", code(35)),
            ("orderDate", DATE),
            ("postingDate", DATE),
            *PARTY,
            ("shipToName", text(100)),
            ("shipToContact", text(100)),
            *ADDRESS,
            ("currencyId", GUID),
            ("currencyCode", code(10)),
            ("paymentTermsId", GUID),
            ("shipmentMethodId", GUID),
            ("salesperson", code(20)),
            ("partialShipping", BOOL),
            ("requestedDeliveryDate", DATE),
            *TOTALS,
            ("fullyShipped", RO_BOOL),
            ("status", enum("Draft", "In Review", "Open", writable=False)),
            ("lastModifiedDateTime", RO_DATETIME),
            ("phoneNumber", text(30)),
            ("email", text(80)),
        ),
        lines="salesOrderLines",
        webhooks=True,
    )
)
SALES_ORDER_LINES = _add(
    Spec(
        "salesOrderLines",
        "salesOrderLine",
        "Sales Line",
        _line_fields(
            ("shipmentDate", DATE),
            ("shippedQuantity", RO_DECIMAL),
            ("invoicedQuantity", RO_DECIMAL),
            ("invoiceQuantity", DECIMAL),
            ("shipQuantity", DECIMAL),
        ),
        parent_key="documentId",
    )
)
SALES_INVOICES = _add(
    Spec(
        "salesInvoices",
        "salesInvoice",
        "Sales Header",
        (
            ("number", code(20, writable=False)),
            ("externalDocumentNumber", code(35)),
            ("invoiceDate", DATE),
            ("postingDate", DATE),
            ("dueDate", DATE),
            ("customerPurchaseOrderReference", text(35)),
            *PARTY,
            ("shipToName", text(100)),
            ("shipToContact", text(100)),
            *ADDRESS,
            ("currencyId", GUID),
            ("currencyCode", code(10)),
            ("orderId", RO_GUID),
            ("orderNumber", code(20, writable=False)),
            ("paymentTermsId", GUID),
            ("shipmentMethodId", GUID),
            ("salesperson", code(20)),
            ("remainingAmount", RO_DECIMAL),
            *TOTALS,
            ("status", enum("Draft", "In Review", "Open", "Paid", "Canceled", "Corrective", writable=False)),
            ("lastModifiedDateTime", RO_DATETIME),
            ("phoneNumber", text(30)),
            ("email", text(80)),
        ),
        lines="salesInvoiceLines",
        actions=frozenset({"post", "postAndSend"}),
        webhooks=True,
    )
)
SALES_INVOICE_LINES = _add(Spec("salesInvoiceLines", "salesInvoiceLine", "Sales Line", _line_fields(("shipmentDate", DATE)), parent_key="documentId"))
SALES_CREDIT_MEMOS = _add(
    Spec(
        "salesCreditMemos",
        "salesCreditMemo",
        "Sales Header",
        (
            ("number", code(20, writable=False)),
            ("externalDocumentNumber", code(35)),
            ("creditMemoDate", DATE),
            ("postingDate", DATE),
            ("dueDate", DATE),
            *PARTY,
            *ADDRESS,
            ("currencyId", GUID),
            ("currencyCode", code(10)),
            ("paymentTermsId", GUID),
            ("shipmentMethodId", GUID),
            ("salesperson", code(20)),
            *TOTALS,
            ("status", enum("Draft", "In Review", "Open", "Canceled", "Corrective", "Paid", writable=False)),
            ("lastModifiedDateTime", RO_DATETIME),
            ("invoiceId", GUID),
            ("invoiceNumber", code(20)),
            ("phoneNumber", text(30)),
            ("email", text(80)),
            ("customerReturnReasonId", GUID),
        ),
        lines="salesCreditMemoLines",
        actions=frozenset({"post"}),
        webhooks=True,
    )
)
SALES_CREDIT_MEMO_LINES = _add(Spec("salesCreditMemoLines", "salesCreditMemoLine", "Sales Line", _line_fields(("shipmentDate", DATE)), parent_key="documentId"))
JOURNALS = _add(
    Spec(
        "customerPaymentJournals",
        "customerPaymentJournal",
        "Gen. Journal Batch",
        (
            ("code", code(10)),
            ("displayName", text(100)),
            ("lastModifiedDateTime", RO_DATETIME),
            ("balancingAccountId", GUID),
            ("balancingAccountNumber", code(20, writable=False)),
        ),
        lines="customerPayments",
        actions=frozenset({"post"}),
        webhooks=True,
    )
)
CUSTOMER_PAYMENTS = _add(
    Spec(
        "customerPayments",
        "customerPayment",
        "Gen. Journal Line",
        (
            ("journalId", RO_GUID),
            ("journalDisplayName", code(10, writable=False)),
            ("lineNumber", INT),
            ("customerId", GUID),
            ("customerNumber", code(20)),
            ("postingDate", DATE),
            ("documentNumber", code(20)),
            ("externalDocumentNumber", code(35)),
            ("amount", DECIMAL),
            ("appliesToInvoiceId", GUID),
            ("appliesToInvoiceNumber", code(20)),
            ("description", text(100)),
            ("comment", text(250)),
            ("lastModifiedDateTime", RO_DATETIME),
        ),
        parent_key="journalId",
    )
)
GL_ENTRIES = _add(
    Spec(
        "generalLedgerEntries",
        "generalLedgerEntry",
        "G/L Entry",
        (
            ("entryNumber", RO_INT),
            ("postingDate", RO_DATE),
            ("documentNumber", code(20, writable=False)),
            ("documentType", enum(" ", "Payment", "Invoice", "Credit Memo", "Finance Charge Memo", "Reminder", "Refund", writable=False)),
            ("accountId", RO_GUID),
            ("accountNumber", code(20, writable=False)),
            ("description", text(100, writable=False)),
            ("debitAmount", RO_DECIMAL),
            ("creditAmount", RO_DECIMAL),
            ("additionalCurrencyDebitAmount", RO_DECIMAL),
            ("additionalCurrencyCreditAmount", RO_DECIMAL),
            ("lastModifiedDateTime", RO_DATETIME),
        ),
        methods=frozenset({"GET"}),
        webhooks=True,
    )
)
LINE_SETS = {s.name for s in SPECS.values() if s.parent_key}
DOCUMENT_OF_LINES = {s.lines: s.name for s in SPECS.values() if s.lines}
WEBHOOK_SETS = frozenset(s.name for s in SPECS.values() if s.webhooks)


def blank(f: F):
    """The value BC answers with for a field nobody set."""
    return {"text": "", "code": "", "guid": NULL_GUID, "date": BLANK_DATE, "decimal": 0, "int": 0, "bool": False, "enum": None, "datetime": None}[f.kind]
