"""The documents shelflife hands out: typed once, printed by `--json`, answered by the API.

Each model's `model_dump(mode="json")` is exactly the JSON document the CLI has always printed
(same keys, same order, same values), and the API's OpenAPI document describes the same models,
so the command line, the API and its description cannot drift apart. Instants are ISO 8601
strings as the services have always written them (with their offset, never rewritten as `Z`),
money is a decimal string, and masked fields carry their mask value, never null for "masked".
"""

from __future__ import annotations

from typing import Annotated, NotRequired

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

Instant = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Day = Annotated[str, Field(json_schema_extra={"format": "date"})]
Money = Annotated[str, Field(description="A decimal amount as a string, e.g. 19.99")]
Text = str | None
"""A personal-data field: its value, its mask value once masked, or null when never given."""


class Document(BaseModel):
    """Unknown keys are an error: a service that adds a key must add it here (and to the docs)."""

    model_config = ConfigDict(extra="forbid")


# -- shelflife import --json / POST /imports ------------------------------------------------------


class LineProblemDocument(Document):
    line: int
    message: str = Field(description="What is wrong with the line; never a value from it.")


class LineNoticeDocument(Document):
    line: int
    kind: str
    message: str


class NoticeSummary(Document):
    kind: str
    lines: int = Field(description="How many lines got this notice.")
    message: str


class ImportReportDocument(Document):
    """What an import did, line by line for refusals and notices."""

    created: int
    updated: int
    unchanged: int
    pii_ignored_masked: int
    pdfs_made: int = Field(
        default=0,
        description="Invoice and credit PDFs made into the document store after the lines.",
    )
    refused: int = Field(description="How many lines were refused; each is in `problems`.")
    problems: list[LineProblemDocument]
    notices: list[LineNoticeDocument]
    notice_summary: list[NoticeSummary]


# -- shelflife show --json / GET /orders/{order_nr} ---------------------------------------------


class CustomerDocument(Document):
    ref: str = Field(description="The buyer's reference (`C<id>`), which search accepts.")
    channel: str
    customer_nr_external: Text
    salutation: Text
    first_name: Text
    last_name: Text
    name: Text
    name2: Text
    company: Text
    address: Text
    street: Text
    house_nr: Text
    zip: Text
    city: Text
    state: Text
    email: Text
    phone: Text
    fax: Text
    vat_id: Text
    birth_date: Text
    note: Text
    history_note: Text
    card_name: Text
    card_nr: Text
    card_exp: Text
    account: Text
    account_name: Text
    country: Text


class AddressDocument(Document):
    kind: str = Field(description="`billing` or `shipping`.")
    salutation: Text
    name: Text
    name2: Text
    first_name: Text
    last_name: Text
    company: Text
    address: Text
    street: Text
    house_nr: Text
    city: Text
    state: Text
    zip: Text
    contact: Text
    phone: Text
    phone2: Text
    fax: Text
    fax2: Text
    email: Text
    email2: Text
    vat_id: Text
    birth_date: Text
    note: Text
    card_type: Text
    card_name: Text
    card_nr: Text
    card_exp: Text
    account: Text
    account_name: Text
    iban: Text
    country: Text


class ItemDocument(Document):
    sku: str
    title: str
    qty: int
    price: Money


class InvoiceDocument(Document):
    invoice_nr: str
    created_at: Instant
    total: Money = Field(description="The gross amount.")
    net: Money | None = None
    tax: Money | None = None
    currency: str = "EUR"
    billing_name: Text
    billing_address: Text
    billing_zip: Text = None
    billing_state: Text = None
    billing_country: Text = None
    billing_vat_id: Text = None
    pdf_sha256: Text = Field(
        default=None,
        description="SHA-256 of the document's PDF (GET .../pdf); masked with the document.",
    )
    manual: bool = Field(description="Issued by hand, not for one order: shown with every order.")


class CreditDocument(Document):
    credit_nr: str
    created_at: Instant
    total: Money = Field(description="The gross amount.")
    net: Money | None = None
    tax: Money | None = None
    currency: str = "EUR"
    billing_name: Text
    billing_address: Text
    billing_zip: Text = None
    billing_state: Text = None
    billing_country: Text = None
    billing_vat_id: Text = None
    pdf_sha256: Text = Field(
        default=None,
        description="SHA-256 of the document's PDF (GET .../pdf); masked with the document.",
    )
    manual: bool


class ReturnDocument(Document):
    return_nr: str
    created_at: Instant
    created_by: str
    items: dict[str, int] = Field(description="Quantity returned per SKU.")
    reason: Text


class HistoryEntryDocument(Document):
    recorded_at: Instant
    event: str
    user_name: str | None
    text: Text


class HeldBy(TypedDict):
    reason: str
    kind: str
    number: str | None
    until: Day | None


class Retention(TypedDict):
    """The order's place in the retention timeline. `mask_blocked_by` and `held_by` are there
    only for an Amazon order whose buyer is neither masked nor retrieved."""

    state: str
    amazon: bool
    feature_enabled: bool
    archive_due: Day | None
    mask_due: Day | None
    archived_at: Instant | None
    archive_current: bool
    archive_failed_at: Instant | None
    archive_retry_at: Instant | None
    masked_at: Instant | None
    retrieved_at: Instant | None
    remask_due: Day | None
    read_only: bool
    expected_mask_date: Day | None
    mask_blocked_by: NotRequired[list[str]]
    held_by: NotRequired[list[HeldBy]]


class OtherOrderDocument(Document):
    order_nr_external: str
    ordered_at: Instant
    shipped_at: Instant | None
    cancelled_at: Instant | None
    state: str


class LinkedOrderDocument(Document):
    """An order of the same Amazon buyer in another customer record (the buyer was masked and
    came back): numbers and states only, never the other record's data."""

    order_nr_external: str
    customer: str = Field(description="The other record's reference (C42).")
    ordered_at: Instant
    shipped_at: Instant | None
    cancelled_at: Instant | None
    state: str


class OrderDocument(Document):
    """One order with its buyer, addresses, documents, history and retention state."""

    shop: str
    time_zone: str
    order_nr_external: str
    ordered_at: Instant
    shipped_at: Instant | None
    cancelled_at: Instant | None
    gift_message: Text
    address_remarks: Text
    shop_note: Text
    customer: CustomerDocument
    addresses: list[AddressDocument]
    items: list[ItemDocument]
    invoices: list[InvoiceDocument]
    credits: list[CreditDocument]
    customer_history: list[HistoryEntryDocument]
    retention: Retention
    other_orders: list[OtherOrderDocument] = Field(
        description="The buyer's other orders, newest first, each with its own state."
    )
    returns: list[ReturnDocument] = Field(
        default_factory=list, description="The order's returns, oldest first."
    )
    replaces_order: str | None = Field(
        default=None, description="For a replacement order: the number of the order it replaces."
    )
    linked_orders: list[LinkedOrderDocument] = Field(
        default_factory=list,
        description="Orders of the same Amazon buyer held in other customer records (masked "
        "earlier ones, or later ones of a masked buyer), linked by a keyed digest of the "
        "marketplace buyer id or relay e-mail; newest first.",
    )


# -- return / replacement / credit create --json, POST .../returns, .../replacements, .../credits


class ReturnCreated(Document):
    """A return created against an order; `retrieved` says the order was masked and was
    retrieved first, in the same transaction."""

    return_nr: str
    order_nr_external: str
    shop: str
    items: dict[str, int]
    reason: str
    created_at: Instant
    created_by: str
    retrieved: bool


class ReplacementCreated(Document):
    """A replacement order: a new order of the same buyer, linked to the one it replaces."""

    order_nr_external: str
    replaces_order: str
    shop: str
    items: list[ItemDocument]
    reason: str
    created_at: Instant
    created_by: str
    retrieved: bool


class CreditCreated(Document):
    """A credit against an invoice, printed with the invoice's billing name and address."""

    credit_nr: str
    invoice_nr: str
    order_nr_external: str | None = Field(description="The invoice's order; null when manual.")
    shop: str
    total: Money
    reason: str
    created_at: Instant
    created_by: str
    retrieved: bool


# -- shelflife find --json / GET /orders -------------------------------------------------------


class FoundOrder(Document):
    order_nr_external: str
    shop: str
    time_zone: str
    channel: str = Field(description="`amazon` or `shop`.")
    customer: str = Field(description="The buyer's reference (`C<id>`).")
    ordered_at: Instant
    shipped_at: Instant | None
    cancelled_at: Instant | None
    state: str
    matched: str = Field(description="What the query matched: a number, an e-mail, a name, ...")


class FindResult(Document):
    query: str
    limit: int
    truncated: bool = Field(description="More orders matched than `limit`; narrow the query.")
    orders: list[FoundOrder] = Field(default_factory=list)


# -- shelflife duplicates --json ------------------------------------------------------------------


class DuplicateGroup(Document):
    shop: str
    channel: str
    customers: list[str] = Field(
        description="Buyer references (`C<id>`), oldest record first: the natural one to keep."
    )
    orders: list[int] = Field(description="Each record's number of orders, in the same order.")


class DuplicatesReport(Document):
    groups: list[DuplicateGroup] = Field(default_factory=list)


class MergeResult(Document):
    kept: str = Field(description="The kept customer's reference (`C<id>`).")
    merged: str = Field(description="The merged customer's reference; it no longer exists.")
    orders_moved: int


# -- shelflife compliance --json / GET /compliance ----------------------------------------------


class ComplianceEntryDocument(Document):
    shop: str
    customer: str = Field(description="The buyer's reference (`C<id>`).")
    orders: list[str]
    reasons: list[str]
    since: Day = Field(description="The first local day past a 30-day limit.")
    expected_mask_date: Day | None
    held_by: list[HeldBy]


class ArchiveProblemDocument(Document):
    """A mismatch a verification found in an archive object (never PII)."""

    location: str = Field(
        description="Which copy: `primary`, `replica`, or `offline` (an export folder)."
    )
    object_key: str
    customer: str | None = Field(
        description="The buyer whose record is damaged (`C<id>`); null: the object as a whole."
    )
    revision: int | None
    problem: str
    found_at: Instant | None = None


class ComplianceReport(Document):
    violations: list[ComplianceEntryDocument]
    holds: list[ComplianceEntryDocument]
    archive_problems: list[ArchiveProblemDocument] = Field(
        default_factory=list,
        description="Damaged archive objects and records no later verification found sound "
        "again: violations too (the archive may not hold what the masking relied on).",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Exports falling behind the masking: the last accounting export older "
        "than 14 days, documents masked within 7 days never exported.",
    )


# -- shelflife run --json / POST /runs, shelflife runs --json / GET /runs -----------------------


class RunReportDocument(Document):
    """What a run did (or, as a dry run, would do)."""

    as_of: Instant
    archived: int = 0
    archive_failed: int = 0
    retried: int = 0
    masked: int = 0
    remasked: int = 0
    mask_refused: int = 0
    shredded: int = Field(
        default=0,
        description="Buyers whose archive data key was destroyed because the legal retention of "
        "all their documents ended (a dry run does not count them).",
    )
    shops: int = 0
    duration_seconds: float = 0.0
    dry_run: bool = False
    verified_objects: int = Field(
        default=0, description="Archive objects the run's verification sample re-read."
    )
    integrity_problems: int = Field(
        default=0, description="Mismatches that sample found (see `compliance`)."
    )
    archive_failure_reasons: list[str] = Field(
        default_factory=list,
        description="The first few different reasons of the archive failures (never PII).",
    )
    mask_refusal_reasons: list[str] = Field(
        default_factory=list,
        description="The first few different reasons why due buyers' data keys did not open "
        "(`mask_refused`; never PII).",
    )


class RunView(Document):
    id: int
    status: str = Field(
        description="`finished`, `failed` (stopped with an error, see `error`) or "
        "`not finished` (still running, or killed: nothing records the end of a killed process)."
    )
    as_of: Instant
    started_at: Instant
    finished_at: Instant | None
    duration_seconds: float | None
    shops: int
    archived: int
    archive_failed: int
    retried: int
    masked: int
    remasked: int
    mask_refused: int
    verified_objects: int = Field(
        default=0, description="Archive objects the run's verification sample re-read."
    )
    integrity_problems: int = Field(default=0, description="Mismatches that sample found.")
    error: str | None


# -- shelflife archive verify / export / migrate --json -----------------------------------------


class VerificationReport(Document):
    """What `archive verify` re-read and what it found."""

    source: str = Field(description="The archive (each location) or the export folder checked.")
    sample_percent: float
    objects_total: int = Field(description="Segments and legacy copies the index records.")
    objects_checked: int = Field(description="Objects re-read, per location.")
    records_checked: int = Field(
        description="Buyer records whose digest and decryption were checked."
    )
    not_exported: int = Field(
        default=0, description="With --from: recorded objects the export does not hold."
    )
    problems: list[ArchiveProblemDocument] = Field(default_factory=list)
    reset_for_archiving: list[str] = Field(
        default_factory=list,
        description="Buyers never masked whose damaged copy was dropped: the next run archives "
        "them again before it masks them.",
    )


class ArchiveExportReport(Document):
    folder: str
    written: int = Field(description="Objects copied into the folder.")
    unchanged: int = Field(description="Objects the folder held already with the same digest.")
    manifest: str = Field(description="The manifest file (object keys, sizes, SHA-256; no keys).")
    problems: list[ArchiveProblemDocument] = Field(
        default_factory=list,
        description="Objects not exported because the archive did not deliver them intact.",
    )


class MigrationReport(Document):
    migrated: int = Field(description="Legacy copies moved into segments.")
    segments: int = Field(description="Segments written.")
    deleted: int = Field(description="Legacy objects deleted after their copy moved.")
    left_in_place: int = Field(
        description="Legacy objects kept because the store does not allow deletion."
    )
    failed: int
    failure_reasons: list[str] = Field(default_factory=list)
    remaining: int = Field(description="Legacy copies still to migrate (failed ones included).")
