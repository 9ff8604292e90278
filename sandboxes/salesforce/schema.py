"""The sandbox org's metadata: which sObjects exist, their fields, key prefixes and Ids.

Field flags follow the REST describe: `createable`, `updateable`, `nillable`, `externalId`,
plus `required` (not nillable and no default on create) and `relationship` for lookups
(`AccountId` → relationship `Account`). Types are the describe types: id, string, textarea,
email, picklist, boolean, currency, double, int, date, datetime, reference.

[U] = assumption about real Salesforce, kept easy to change here. Custom fields (`__c`) are
the ones a Q2C org would add for the integration; CPQ is modelled by the few `SBQQ__` fields
the connector reads, not by the managed package.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Field:
    name: str
    type: str = "string"
    required: bool = False  # on create
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False  # restricted picklist: other values are rejected
    reference_to: str = ""  # for type == "reference"
    default: object = None

    @property
    def relationship(self) -> str:
        if self.type != "reference":
            return ""
        return self.name[:-2] if self.name.endswith("Id") else self.name.replace("__c", "__r")


@dataclass(frozen=True)
class SObject:
    name: str
    key_prefix: str
    fields: tuple[Field, ...]
    label: str = ""
    change_events: bool = True  # selected for Change Data Capture
    by_lower: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        self.by_lower.update({f.name.lower(): f for f in self.fields})

    def field(self, name: str) -> Field | None:
        return self.by_lower.get(name.lower())

    def relationship(self, name: str) -> Field | None:
        name = name.lower()
        for f in self.fields:
            if f.type == "reference" and f.relationship.lower() == name:
                return f
        return None


def _ro(name: str, type_: str = "string", **kw) -> Field:
    return Field(name, type_, createable=False, updateable=False, **kw)


SYSTEM_FIELDS = (
    _ro("Id", "id"),
    _ro("IsDeleted", "boolean"),
    _ro("CreatedDate", "datetime"),
    _ro("CreatedById", "reference", reference_to="User"),
    _ro("LastModifiedDate", "datetime"),
    _ro("LastModifiedById", "reference", reference_to="User"),
    _ro("SystemModstamp", "datetime"),
)
OWNED = (Field("OwnerId", "reference", reference_to="User"),)
CURRENCY = (Field("CurrencyIsoCode", "picklist", picklist=("USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK"), restricted=True, default="USD"),)

ORDER_STATUSES = ("Draft", "Activated")
CONTRACT_STATUSES = ("Draft", "InApproval", "Activated", "Terminated", "Expired")
OPPORTUNITY_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost")

OBJECTS: dict[str, SObject] = {}


def _register(obj: SObject) -> None:
    OBJECTS[obj.name.lower()] = obj


_register(SObject("User", "005", (*SYSTEM_FIELDS, Field("Username"), Field("Name"), Field("Email", "email")), change_events=False))
_register(
    SObject(
        "Account",
        "001",
        (
            *SYSTEM_FIELDS,
            *OWNED,
            *CURRENCY,
            Field("Name", required=True),
            Field("AccountNumber"),
            Field("Type", "picklist", picklist=("Customer", "Prospect", "Partner")),
            Field("Industry"),
            Field("Phone"),
            Field("Website"),
            Field("Description", "textarea"),
            Field("BillingStreet"),
            Field("BillingCity"),
            Field("BillingState"),
            Field("BillingPostalCode"),
            Field("BillingCountry"),
            Field("Billing_Email__c", "email"),
            Field("Tax_Id__c"),
            Field("Legal_Entity__c"),
            Field("Segment__c"),
            Field("Payment_Terms__c"),
            Field("External_Id__c", external_id=True),
            Field("ERP_Customer_Id__c", external_id=True),
            Field("Billing_Customer_Id__c", external_id=True),
            Field("Q2C_Hub_Id__c", external_id=True),
        ),
    )
)
_register(
    SObject(
        "Product2",
        "01t",
        (
            *SYSTEM_FIELDS,
            Field("Name", required=True),
            Field("ProductCode"),
            Field("Family", "picklist", picklist=("Subscription", "Services", "Hardware", "Usage")),
            Field("Description", "textarea"),
            Field("IsActive", "boolean", default=True),
            # [U] how an org flags recurring vs one-time; CPQ uses SBQQ__ChargeType__c / SBQQ__BillingFrequency__c
            Field("SBQQ__ChargeType__c", "picklist", picklist=("Recurring", "One-Time", "Usage")),
            Field("SBQQ__BillingFrequency__c", "picklist", picklist=("Monthly", "Quarterly", "Semiannual", "Annual")),
            Field("External_Id__c", external_id=True),
        ),
    )
)
_register(
    SObject(
        "Opportunity",
        "006",
        (
            *SYSTEM_FIELDS,
            *OWNED,
            *CURRENCY,
            Field("Name", required=True),
            Field("AccountId", "reference", reference_to="Account"),
            Field("StageName", "picklist", required=True, picklist=OPPORTUNITY_STAGES),
            Field("CloseDate", "date", required=True),
            Field("Amount", "currency"),
            Field("Probability", "double"),
            Field("Type", "picklist", picklist=("New Business", "Existing Business", "Renewal")),
            _ro("IsWon", "boolean"),
            _ro("IsClosed", "boolean"),
            Field("Description", "textarea"),
            Field("SBQQ__RenewedContract__c", "reference", reference_to="Contract"),
            Field("External_Id__c", external_id=True),
        ),
    )
)
_register(
    SObject(
        "OpportunityLineItem",
        "00k",
        (
            *SYSTEM_FIELDS,
            Field("OpportunityId", "reference", required=True, updateable=False, reference_to="Opportunity"),
            Field("Product2Id", "reference", required=True, updateable=False, reference_to="Product2"),
            _ro("ProductCode"),
            Field("Quantity", "double", required=True),
            Field("UnitPrice", "currency", required=True),
            _ro("TotalPrice", "currency"),
            Field("Description"),
        ),
        change_events=False,
    )
)
_register(
    SObject(
        "Contract",
        "800",
        (
            *SYSTEM_FIELDS,
            *OWNED,
            *CURRENCY,
            Field("AccountId", "reference", required=True, reference_to="Account"),
            _ro("ContractNumber"),
            Field("Status", "picklist", required=True, picklist=CONTRACT_STATUSES, restricted=True, default="Draft"),
            Field("StartDate", "date"),
            Field("ContractTerm", "int"),
            _ro("EndDate", "date"),
            Field("Description", "textarea"),
            Field("SBQQ__Order__c", "reference", reference_to="Order"),
            Field("SBQQ__Opportunity__c", "reference", reference_to="Opportunity"),
            Field("External_Id__c", external_id=True),
        ),
    )
)
_register(
    SObject(
        "Order",
        "801",
        (
            *SYSTEM_FIELDS,
            *OWNED,
            *CURRENCY,
            Field("AccountId", "reference", required=True, reference_to="Account"),
            Field("EffectiveDate", "date", required=True),
            Field("EndDate", "date"),
            Field("Status", "picklist", required=True, picklist=ORDER_STATUSES, restricted=True, default="Draft"),
            _ro("StatusCode"),
            _ro("OrderNumber"),
            _ro("TotalAmount", "currency"),
            Field("OpportunityId", "reference", reference_to="Opportunity"),
            Field("ContractId", "reference", reference_to="Contract"),
            # [U] CPQ marks amendment/renewal orders through the quote; here the standard Type picklist carries it
            Field("Type", "picklist", picklist=("New", "Amendment", "Renewal"), default="New"),
            Field("Description", "textarea"),
            Field("Legal_Entity__c"),
            Field("Q2C_Status__c", "picklist", picklist=("Pending", "In Progress", "Activated", "Failed", "Cancelled")),
            Field("Q2C_Error__c", "textarea"),
            Field("ERP_Order_Id__c", external_id=True),
            Field("Billing_Subscription_Id__c", external_id=True),
            Field("Last_Invoice_Status__c"),
            Field("Payment_Status__c"),
            Field("External_Id__c", external_id=True),
        ),
    )
)
_register(
    SObject(
        "OrderItem",
        "802",
        (
            *SYSTEM_FIELDS,
            Field("OrderId", "reference", required=True, updateable=False, reference_to="Order"),
            Field("Product2Id", "reference", required=True, updateable=False, reference_to="Product2"),
            Field("PricebookEntryId"),
            Field("Quantity", "double", required=True),
            Field("UnitPrice", "currency", required=True),
            _ro("TotalPrice", "currency"),
            Field("ServiceDate", "date"),
            Field("EndDate", "date"),
            Field("Description"),
            _ro("OrderItemNumber"),
            Field("External_Id__c", external_id=True),
        ),
    )
)

PREFIXES = {obj.key_prefix: obj for obj in OBJECTS.values()}


def sobject(name: str) -> SObject | None:
    return OBJECTS.get((name or "").lower())


# --- record Ids ---------------------------------------------------------------------------
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id18(id15: str) -> str:
    """Salesforce's case-safe suffix: per 5-char chunk, a bit per upper-case letter."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        flags = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _SUFFIX[flags]
    return id15 + suffix


def make_id(prefix: str, number: int) -> str:
    """prefix (3) + pod "5g" + base62 counter (10) → 15 chars, + checksum → 18."""
    digits = ""
    while number:
        number, rem = divmod(number, 62)
        digits = BASE62[rem] + digits
    return id18(prefix + "5g" + digits.rjust(10, "0"))


def normalise_id(value: str) -> str | None:
    """A 15- or 18-char Id as its 18-char form, or None when it is not shaped like an Id."""
    if not isinstance(value, str) or len(value) not in (15, 18) or not all(c in BASE62 for c in value):
        return None
    full = id18(value[:15])
    if len(value) == 18 and value[15:].upper() != full[15:]:
        return None
    return full


ORG_ID = id18("00D5g000004Q2Cx")
INTEGRATION_USER_ID = id18("0055g00000Q2Cin")  # the connected app's run-as user
REP_USER_ID = id18("0055g00000Q2Crp")  # a sales rep working in Lightning Experience
