"""The relational schema. Every PII column listed in the masking profile exists here.

Invariants that must hold whatever code writes the rows are CheckConstraints; columns carry
`comment=` so that an operator browsing the database sees what a column is for.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shelflife.adapters.db.types import UtcDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        Decimal: Numeric(12, 2),
        date: Date(),
    }


def pii(length: int | None = None, comment: str = "PII") -> Mapped[str | None]:
    """A nullable PII text column; `length=None` means unbounded text."""
    kind = Text() if length is None else String(length)
    return mapped_column(kind, nullable=True, comment=comment)


class Shop(Base):
    __tablename__ = "shops"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, comment="Seller's shop name")
    time_zone: Mapped[str] = mapped_column(
        String(64), comment="IANA zone in which retention calendar days are counted"
    )
    amazon_order_pattern: Mapped[str] = mapped_column(
        String(200), comment="Regex that identifies Amazon orders by external order number"
    )
    retention_enabled: Mapped[bool] = mapped_column(
        Boolean, default=False, comment="Archiving and masking run only when enabled"
    )
    created_at: Mapped[datetime]
    keep_vat_id: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        server_default="0",
        comment="Invoices and credits keep the buyer's VAT ID when masked (tax_fields_basis)",
    )
    keep_zip: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        server_default="0",
        comment="Invoices and credits keep the billing postcode when masked (tax_fields_basis)",
    )
    keep_state: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        server_default="0",
        comment="Invoices and credits keep the billing region when masked (tax_fields_basis)",
    )
    tax_fields_basis: Mapped[str | None] = mapped_column(
        Text, comment="The legal basis recorded for the kept tax fields; set while any is kept"
    )


class ShopFeatureChange(Base):
    """Who switched retention on or off, and when: operators and auditors ask."""

    __tablename__ = "shop_feature_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime]
    changed_by: Mapped[str] = mapped_column(String(100))


AMAZON = "amazon"
"""`customers.channel` of a marketplace buyer: the only buyers archived and masked."""
COPY_WANTED = (
    f"channel = '{AMAZON}' AND (masked_at IS NULL OR retrieved_at IS NOT NULL) "
    "AND (archived_revision IS NULL OR archived_revision != pii_revision)"
)
"""Twin of `retention.archive_due_condition`'s column tests: its partial index lets the
archive step walk only the buyers it can select (Amazon buyers with real PII and no current
copy), not every buyer of the shop."""


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("channel IN ('amazon', 'shop')", name="channel"),
        CheckConstraint("pii_revision >= 1", name="revision_positive"),
        CheckConstraint(
            "archived_revision IS NULL OR archived_revision <= pii_revision",
            name="archive_not_ahead",
        ),
        CheckConstraint(
            "retrieved_at IS NULL OR masked_at IS NOT NULL", name="retrieved_was_masked"
        ),
        CheckConstraint(
            "shredded_at IS NULL OR data_key_wrapped IS NULL", name="shredded_has_no_key"
        ),
        UniqueConstraint("shop_id", "channel", "identity_digest", name="uq_customers_identity"),
        Index("ix_customers_buyer_link", "shop_id", "buyer_link"),
        # The mask step's buyers (archived, not masked yet) and the re-mask step's (retrieved),
        # found without walking every buyer of the shop (migration 0014).
        Index(
            "ix_customers_mask_waiting",
            "id",
            postgresql_where=text("masked_at IS NULL AND archived_revision IS NOT NULL"),
            sqlite_where=text("masked_at IS NULL AND archived_revision IS NOT NULL"),
        ),
        Index(
            "ix_customers_retrieved",
            "id",
            postgresql_where=text("retrieved_at IS NOT NULL"),
            sqlite_where=text("retrieved_at IS NOT NULL"),
        ),
        # The archive step's buyers: real PII and no current copy (migration 0015).
        Index(
            "ix_customers_copy_wanted",
            "id",
            postgresql_where=text(COPY_WANTED),
            sqlite_where=text(COPY_WANTED),
        ),
        {"sqlite_autoincrement": True},  # a buyer reference (C42) is never handed out again
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    channel: Mapped[str] = mapped_column(
        String(10), comment="amazon or shop; an Amazon buyer never shares a record with a shop one"
    )
    identity_digest: Mapped[str | None] = mapped_column(
        String(64),
        comment="Keyed hash of customer number or e-mail; cleared on masking to seal the record",
    )
    buyer_link: Mapped[str | None] = mapped_column(
        String(64),
        comment="Keyed hash of the marketplace buyer id or relay e-mail; kept when masked, so "
        "that a buyer's later records link to the masked ones; not PII on its own",
    )
    created_at: Mapped[datetime]

    customer_nr_external: Mapped[str | None] = pii(100, "PII: CustomerNrExternal")
    salutation: Mapped[str | None] = pii(30)
    first_name: Mapped[str | None] = pii(100, "PII: SFirstName")
    last_name: Mapped[str | None] = pii(100, "PII: SLastName")
    name: Mapped[str | None] = pii(201, "PII: SName (first and last name joined)")
    name2: Mapped[str | None] = pii(200, "PII: SName2")
    company: Mapped[str | None] = pii(200)
    address: Mapped[str | None] = pii(300, "PII: SAddress")
    street: Mapped[str | None] = pii(200, "PII: SStreet")
    house_nr: Mapped[str | None] = pii(20, "PII: SHouseNr")
    zip: Mapped[str | None] = pii(20, "PII: SZIP")
    city: Mapped[str | None] = pii(100, "PII: SCity")
    state: Mapped[str | None] = pii(100, "PII: SState")
    country: Mapped[str | None] = mapped_column(
        String(100), comment="Kept after masking: needed for tax reports"
    )
    email: Mapped[str | None] = pii(254, "PII: CeMail")
    phone: Mapped[str | None] = pii(50, "PII: CPhone")
    fax: Mapped[str | None] = pii(50, "PII: CFax")
    birth_date: Mapped[date | None] = mapped_column(Date, comment="PII")
    note: Mapped[str | None] = pii(None, "PII: CNote")
    history_note: Mapped[str | None] = pii(None, "PII: CHisNote")
    vat_id: Mapped[str | None] = pii(20, "PII: the buyer's VAT ID")
    card_name: Mapped[str | None] = pii(100, "PII: CardName")
    card_nr: Mapped[str | None] = pii(40, "PII: CardNr")
    card_exp: Mapped[str | None] = pii(10, "PII: CardExp")
    account: Mapped[str | None] = pii(40, "PII: Account")
    account_name: Mapped[str | None] = pii(100, "PII: AccName")

    pii_revision: Mapped[int] = mapped_column(
        Integer, default=1, comment="Bumped on every PII change anywhere in this buyer's rows"
    )
    archived_revision: Mapped[int | None] = mapped_column(
        Integer, comment="Revision held by the newest verified archive copy"
    )
    archived_at: Mapped[datetime | None]
    archive_failed_at: Mapped[datetime | None] = mapped_column(
        comment="Last failed archive attempt; retried one day later"
    )
    archive_failure: Mapped[str | None] = mapped_column(
        String(200), comment="Why the last archive failed (never contains PII)"
    )
    data_key_wrapped: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="Per-buyer archive data key, wrapped by the master key"
    )
    data_key_master_id: Mapped[str | None] = mapped_column(String(64))
    masked_at: Mapped[datetime | None] = mapped_column(comment="First masking")
    retrieved_at: Mapped[datetime | None] = mapped_column(
        comment="Last retrieval; read-only and masked again 30 days later"
    )
    pii_sources: Mapped[str | None] = mapped_column(
        Text,
        comment="JSON: which order (ordered_at and number) each group of buyer fields came "
        "from, so that merging orders' customer blocks does not depend on import order; not PII",
    )
    shredded_at: Mapped[datetime | None] = mapped_column(
        comment="When the buyer's archive data key was destroyed; the archive is unreadable"
    )
    shredded_because: Mapped[str | None] = mapped_column(
        String(20),
        comment="retention (legal retention ended) or erasure (erased on request)",
    )


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("shop_id", "order_nr_external", name="uq_orders_number"),
        Index("ix_orders_customer", "customer_id"),
        Index("ix_orders_number", "order_nr_external"),  # found by number without the shop
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    order_nr_external: Mapped[str] = mapped_column(String(100))
    is_amazon: Mapped[bool] = mapped_column(
        Boolean, comment="Set at import from the order number; never changes"
    )
    ordered_at: Mapped[datetime]
    shipped_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    gift_message: Mapped[str | None] = pii(None, "PII: GiftMessage")
    address_remarks: Mapped[str | None] = pii(None, "PII: Address_Remarks")
    shop_note: Mapped[str | None] = pii(None, "PII: Shop_Note")
    masked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    replaces_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id"),
        index=True,
        comment="The order this replacement order replaces; NULL for an ordinary order",
    )


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(500))
    qty: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal]
    __table_args__ = (CheckConstraint("qty > 0", name="qty_positive"),)


class Address(Base):
    __tablename__ = "addresses"
    __table_args__ = (
        CheckConstraint("kind IN ('billing', 'shipping')", name="kind"),
        UniqueConstraint("order_id", "kind", name="uq_addresses_one_per_kind"),
        Index("ix_addresses_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    kind: Mapped[str] = mapped_column(String(10))
    salutation: Mapped[str | None] = pii(30, "PII: Anrede")
    name: Mapped[str | None] = pii(201, "PII: Name (first and last name joined)")
    name2: Mapped[str | None] = pii(200, "PII: Name2")
    first_name: Mapped[str | None] = pii(100, "PII: FirstName")
    last_name: Mapped[str | None] = pii(100, "PII: LastName")
    company: Mapped[str | None] = pii(200)
    address: Mapped[str | None] = pii(300, "PII: Address")
    street: Mapped[str | None] = pii(200, "PII: Street")
    house_nr: Mapped[str | None] = pii(20, "PII: HouseNr")
    city: Mapped[str | None] = pii(100, "PII: City")
    state: Mapped[str | None] = pii(100, "PII: State")
    zip: Mapped[str | None] = pii(20, "PII: ZIP")
    country: Mapped[str | None] = mapped_column(
        String(100), comment="Kept after masking: needed for tax reports"
    )
    contact: Mapped[str | None] = pii(200, "PII: Contact")
    phone: Mapped[str | None] = pii(50, "PII: Phone")
    phone2: Mapped[str | None] = pii(50, "PII: Phone2")
    fax: Mapped[str | None] = pii(50, "PII: Fax")
    fax2: Mapped[str | None] = pii(50, "PII: Fax2")
    email: Mapped[str | None] = pii(254, "PII: eMail")
    email2: Mapped[str | None] = pii(254, "PII: eMail2")
    vat_id: Mapped[str | None] = pii(20, "PII: VAT ID of the addressee")
    birth_date: Mapped[date | None] = mapped_column(Date, comment="PII: BirthDate")
    note: Mapped[str | None] = pii(None, "PII: Note")
    card_type: Mapped[str | None] = pii(30, "PII: ACardType")
    card_name: Mapped[str | None] = pii(100, "PII: ACardName")
    card_nr: Mapped[str | None] = pii(40, "PII: ACardNr")
    card_exp: Mapped[str | None] = pii(10, "PII: ACardExp")
    account: Mapped[str | None] = pii(40, "PII: AAccount")
    account_name: Mapped[str | None] = pii(100, "PII: AAccName")
    iban: Mapped[str | None] = pii(34, "PII: IBAN")
    masked_at: Mapped[datetime | None]


class AddressHistory(Base):
    """Old values of an address field, recorded when a re-import changed it."""

    __tablename__ = "address_history"
    __table_args__ = (Index("ix_address_history_customer", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    recorded_at: Mapped[datetime]
    field: Mapped[str] = mapped_column(String(40), comment="Column name; not PII")
    old_value: Mapped[str | None] = pii(None, "PII: Addresses history")
    masked_at: Mapped[datetime | None]


class CustomerHistory(Base):
    """Events in a buyer's life; `text` is free text and therefore PII."""

    __tablename__ = "customer_history"
    __table_args__ = (Index("ix_customer_history_customer", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    recorded_at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(30), comment="retrieved, masked, remasked, note")
    user_name: Mapped[str | None] = mapped_column(String(100), comment="Staff member; not a buyer")
    text: Mapped[str | None] = pii(None, "PII: Customer history")
    masked_at: Mapped[datetime | None]


class _AccountingDocument:
    """Columns an invoice and a credit note share: who, which order, when, how much, and the
    billing name and address as printed, which are PII."""

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id"), index=True, comment="NULL for a manual document"
    )
    created_at: Mapped[datetime]
    total: Mapped[Decimal]
    billing_name: Mapped[str | None] = pii(201, "PII: billing name as printed")
    billing_address: Mapped[str | None] = pii(None)
    billing_zip: Mapped[str | None] = pii(
        20, "PII: billing postcode; kept when masked where the shop keeps zip"
    )
    billing_state: Mapped[str | None] = pii(
        100, "PII: billing region; kept when masked where the shop keeps state"
    )
    billing_country: Mapped[str | None] = mapped_column(
        String(100), comment="Kept after masking: needed for tax reports"
    )
    billing_vat_id: Mapped[str | None] = pii(
        20, "PII: buyer's VAT ID; kept when masked where the shop keeps vat_id"
    )
    net: Mapped[Decimal | None] = mapped_column(comment="Net amount; NULL when not imported")
    tax: Mapped[Decimal | None] = mapped_column(comment="Tax amount; NULL when not imported")
    currency: Mapped[str] = mapped_column(
        String(3), default="EUR", server_default="EUR", comment="ISO 4217 code of the amounts"
    )
    exported_at: Mapped[datetime | None] = mapped_column(
        comment="Last accounting export that listed it; NULL: never exported"
    )
    pdf_sha256: Mapped[str | None] = pii(
        64, "PII: SHA-256 of the document's PDF; NULL: no PDF made yet"
    )
    pdf_stored: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        server_default="0",
        comment="The document store holds the PDF now (not while masked)",
    )
    pdf_exported_at: Mapped[datetime | None] = mapped_column(
        comment="Last invoices export that included the PDF; NULL: never exported"
    )
    masked_at: Mapped[datetime | None]


class Invoice(_AccountingDocument, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("shop_id", "invoice_nr", name="uq_invoices_number"),
        Index("ix_invoices_customer", "customer_id"),
        Index("ix_invoices_number", "invoice_nr"),
        Index(
            "ix_invoices_pdf_pending",
            "id",
            postgresql_where=text("pdf_sha256 IS NULL AND masked_at IS NULL"),
            sqlite_where=text("pdf_sha256 IS NULL AND masked_at IS NULL"),
        ),
        Index(
            "ix_invoices_pdf_leaving",
            "id",
            postgresql_where=text("pdf_stored AND masked_at IS NOT NULL"),
            sqlite_where=text("pdf_stored AND masked_at IS NOT NULL"),
        ),
    )

    invoice_nr: Mapped[str] = mapped_column(String(64))


class Credit(_AccountingDocument, Base):
    __tablename__ = "credits"
    __table_args__ = (
        UniqueConstraint("shop_id", "credit_nr", name="uq_credits_number"),
        Index("ix_credits_customer", "customer_id"),
        Index("ix_credits_number", "credit_nr"),
        Index(
            "ix_credits_pdf_pending",
            "id",
            postgresql_where=text("pdf_sha256 IS NULL AND masked_at IS NULL"),
            sqlite_where=text("pdf_sha256 IS NULL AND masked_at IS NULL"),
        ),
        Index(
            "ix_credits_pdf_leaving",
            "id",
            postgresql_where=text("pdf_stored AND masked_at IS NOT NULL"),
            sqlite_where=text("pdf_stored AND masked_at IS NOT NULL"),
        ),
    )

    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    credit_nr: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(
        String(100), comment="Staff member who created it in shelflife; NULL when imported"
    )
    reason: Mapped[str | None] = pii(None, "PII: why the credit was given (free text)")


class Return(Base):
    """Goods a buyer sends back, against one order. The reason is free text a person typed and
    may name the buyer: PII, archived and masked with the buyer's other rows."""

    __tablename__ = "returns"
    __table_args__ = (
        UniqueConstraint("shop_id", "return_nr", name="uq_returns_number"),
        Index("ix_returns_customer", "customer_id"),
        Index("ix_returns_order", "order_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    return_nr: Mapped[str] = mapped_column(String(64), comment="<order>-RET<n>")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100), comment="Staff member; not a buyer")
    items: Mapped[str] = mapped_column(
        Text, comment='JSON object SKU -> quantity returned, e.g. {"A-1": 2}; not PII'
    )
    reason: Mapped[str | None] = pii(None, "PII: why the goods came back (free text)")
    masked_at: Mapped[datetime | None]


class ArchiveCopy(Base):
    """One encrypted, read-back-verified snapshot of a buyer's PII in the archive store."""

    __tablename__ = "archive_copies"
    __table_args__ = (
        UniqueConstraint("customer_id", "revision", name="uq_archive_copies_revision"),
        Index("ix_archive_copies_object_key", "object_key"),
        # Legacy copies only (verify, export, migrate find them without reading the others);
        # segment records, what the nightly run inserts, never touch it.
        Index(
            "ix_archive_copies_legacy",
            "id",
            sqlite_where=text("record_offset IS NULL"),
            postgresql_where=text("record_offset IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    revision: Mapped[int] = mapped_column(Integer)
    object_key: Mapped[str] = mapped_column(String(300))
    ciphertext_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    verified_at: Mapped[datetime]
    record_offset: Mapped[int | None] = mapped_column(
        BigInteger, comment="Start of the record in its segment; NULL: a legacy whole object"
    )
    record_length: Mapped[int | None] = mapped_column(Integer)


class ArchiveSegment(Base):
    """One archive object written by a nightly batch, holding many buyers' records; its copies
    name it by `object_key`. The size and digest are the whole object's, for scrubbing."""

    __tablename__ = "archive_segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    object_key: Mapped[str] = mapped_column(String(300), unique=True)
    created_at: Mapped[datetime]
    record_count: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[datetime | None] = mapped_column(
        comment="Last time a verification re-read it and found it sound; NULL: never"
    )


class ArchiveProblem(Base):
    """A mismatch a verification found in an archive object (never PII); open until a later
    check of the same object finds it sound. `compliance` lists the open ones as violations."""

    __tablename__ = "archive_problems"
    __table_args__ = (Index("ix_archive_problems_object_key", "object_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    found_at: Mapped[datetime]
    location: Mapped[str] = mapped_column(
        String(20), comment="primary or replica: which copy of the object is damaged"
    )
    object_key: Mapped[str] = mapped_column(String(300))
    customer_id: Mapped[int | None] = mapped_column(
        Integer, comment="The buyer whose record is damaged; NULL: the object as a whole"
    )
    revision: Mapped[int | None] = mapped_column(Integer)
    problem: Mapped[str] = mapped_column(String(200), comment="What is wrong; never PII")
    resolved_at: Mapped[datetime | None] = mapped_column(
        comment="When a later check of the object found it sound; NULL: still open"
    )


class RetentionRun(Base):
    """One execution of `shelflife run`: what an operator checks each morning."""

    __tablename__ = "retention_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    as_of: Mapped[datetime]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    archived: Mapped[int] = mapped_column(Integer, default=0)
    archive_failed: Mapped[int] = mapped_column(Integer, default=0)
    retried: Mapped[int] = mapped_column(Integer, default=0)
    masked: Mapped[int] = mapped_column(Integer, default=0)
    remasked: Mapped[int] = mapped_column(Integer, default=0)
    shops: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", comment="Shops with the feature enabled"
    )
    mask_refused: Mapped[int] = mapped_column(
        Integer,
        default=0,
        server_default="0",
        comment="Buyers due for masking whose archive key does not open with the loaded key",
    )
    verified_objects: Mapped[int] = mapped_column(
        Integer,
        default=0,
        server_default="0",
        comment="Archive objects the run's sample re-read and checked",
    )
    integrity_problems: Mapped[int] = mapped_column(
        Integer,
        default=0,
        server_default="0",
        comment="Mismatches the run's sample found (see archive_problems)",
    )
    error: Mapped[str | None] = mapped_column(
        String(300), comment="Why the run stopped early (never PII); NULL when it completed"
    )


class Installation(Base):
    """The installation's key lineage: the one master key its data is sealed under, and the
    buyer-identity key. A single row, written by `shelflife init`.

    Recording the key id lets every command refuse a different key file before it writes
    anything; the identity key is its own random key (wrapped by the master key), so that a
    master-key rotation re-wraps it instead of splitting returning buyers from their records.
    """

    __tablename__ = "installation"
    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    master_key_id: Mapped[str] = mapped_column(
        String(64), comment="Id of the master key every data key and archive copy is sealed under"
    )
    identity_key_wrapped: Mapped[bytes] = mapped_column(
        LargeBinary, comment="HMAC key of buyer identity digests, wrapped by the master key"
    )
    previous_master_key_id: Mapped[str | None] = mapped_column(
        String(64),
        comment="While `keys rotate` works: the master key it moves data keys away from",
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class KeyEncryptionKey(Base):
    """Every master key (key-encryption key) the installation has used, and where it is: a
    process that meets a data key under a key it has not loaded (a rotation began while it
    ran) loads that key from here. Locations only, never key material."""

    __tablename__ = "key_encryption_keys"
    __table_args__ = (CheckConstraint("provider IN ('file', 'kms')", name="provider"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, comment="Master key id")
    provider: Mapped[str] = mapped_column(String(10), comment="file or kms")
    location: Mapped[str] = mapped_column(
        Text, comment="Path of the key file, or the ARN of the KMS key"
    )
    created_at: Mapped[datetime]


class WrappingKey(Base):
    """An intermediate key a KMS key encrypted (one per process that wrapped data keys): data
    keys are wrapped under it locally, so KMS calls do not grow with the number of buyers.
    Opening one takes a single KMS Decrypt, cached by the process."""

    __tablename__ = "wrapping_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    master_key_id: Mapped[str] = mapped_column(String(64), comment="The KMS key that encrypted it")
    encrypted: Mapped[bytes] = mapped_column(
        LargeBinary, comment="The key as KMS encrypted it (its CiphertextBlob)"
    )
    created_at: Mapped[datetime]


class Export(Base):
    """One export written before masking (e.g. the accounting CSV): what, which period, and
    the digest of the file, so that a tax auditor can match a file with its record."""

    __tablename__ = "exports"
    __table_args__ = (Index("ix_exports_kind_created", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), comment="accounting")
    shop: Mapped[str | None] = mapped_column(String(100), comment="NULL: every shop")
    period_from: Mapped[date] = mapped_column(
        comment="First day, inclusive, in each shop's time zone"
    )
    period_to: Mapped[date] = mapped_column(comment="Last day, inclusive, in each shop's time zone")
    file_sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer, comment="Data rows, the header not counted")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100), comment="Staff member; not a buyer")


PII_TABLES: dict[str, type[Any]] = {
    # typed loosely: callers use the shared columns id, customer_id and masked_at
    "customers": Customer,
    "addresses": Address,
    "address_history": AddressHistory,
    "customer_history": CustomerHistory,
    "orders": Order,
    "invoices": Invoice,
    "credits": Credit,
    "returns": Return,
}


class User(Base):
    """A member of staff who signs in to the web app or calls the API; never a buyer."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('agent', 'admin', 'support')", name="role"),
        CheckConstraint("failed_logins >= 0", name="failed_logins_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, comment="Login name")
    role: Mapped[str] = mapped_column(String(10), comment="agent, admin or support")
    password_hash: Mapped[str] = mapped_column(String(200), comment="argon2id hash")
    failed_logins: Mapped[int] = mapped_column(
        Integer, default=0, comment="Failed logins in a row; the account locks at 10"
    )
    locked_at: Mapped[datetime | None] = mapped_column(
        comment="Locked after too many failed logins, until an admin unlocks it"
    )
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PasswordHistory(Base):
    """Hashes of each user's recent passwords, so that none of the last ten is chosen again."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ApiToken(Base):
    """A bearer token for the API. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a
    database dump cannot be replayed as a login."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64), comment="Sent back with every form")
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(comment="Logged out or expired")


class AuditLogEntry(Base):
    """The append-only, hash-chained audit log (see domain/audit.py); holds no buyer PII
    except a retrieval's reason, which is the point of the entry."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100), comment="User name, or the process")
    action: Mapped[str] = mapped_column(String(50), comment="What happened, e.g. user.added")
    subject: Mapped[str | None] = mapped_column(String(200), comment="Order, user or shop")
    detail: Mapped[str] = mapped_column(Text, comment="JSON object of the entry's details")
    previous_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
