"""The REST API under /api/v1: find, show, retrieve, import, edit addresses, runs, compliance,
audit and the feature switch, on the same services and documents as the CLI.

Routes parse, check the token's permission (the same table as the pages), call one service and
answer its typed document. Every failure is a problem document (errors.py); request bodies are
strict (no unknown fields, no coercion of wrong types).
"""

from __future__ import annotations

import io
import re
import tempfile
import threading
from datetime import date
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shelflife.domain.access import Permission
from shelflife.domain.accounts import Account
from shelflife.domain.after_sales import MAX_ITEMS, MAX_REASON_LENGTH
from shelflife.domain.errors import Conflict, InvalidInput
from shelflife.domain.legal_retention import DocumentKind
from shelflife.domain.policy import MAX_RETRIEVAL_REASON_LENGTH
from shelflife.domain.records import FIELD_MAX_LENGTH
from shelflife.entrypoints.web.errors import PROBLEM_JSON, problem
from shelflife.entrypoints.web.security import AppDep, api_permission
from shelflife.services import (
    addresses,
    after_sales,
    audit,
    customers,
    importing,
    inspection,
    pdfs,
    pipeline,
    retrieval,
    search,
    shops,
)
from shelflife.services import runs as run_views
from shelflife.services.documents import (
    ComplianceReport,
    CreditCreated,
    DuplicatesReport,
    FoundOrder,
    ImportReportDocument,
    MergeResult,
    OrderDocument,
    ReplacementCreated,
    ReturnCreated,
    RunView,
)
from shelflife.services.exports import (
    check_export_warnings,
    export_accounting,
    export_invoices,
)
from shelflife.services.integrity import open_archive_problems

MAX_IMPORT_BYTES = 16 * 1024 * 1024
"""The largest JSON Lines body one request may import (about 10,000 orders); larger files go
in several requests or through `shelflife import`. Beyond it the answer is 413, read no further."""

IMPORT_MEDIA_TYPES = ("application/x-ndjson", "application/jsonl", "text/plain")
MAX_NUMBER_LENGTH = 100
"""The longest order, invoice, credit number or shop name the database holds."""


MAX_JSON_BYTES = 64 * 1024
"""The largest body of any other request, a page's form included; the largest real ones (an
address, a note of 1000 characters) are far below."""


class BoundedBodies:
    """Refuse a request body beyond its limit (413) while it arrives, before it is parsed, so
    that no request makes the server hold more than its limit in memory."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        imports = scope["path"].endswith("/imports")
        limit = MAX_IMPORT_BYTES if imports else MAX_JSON_BYTES
        detail = f"the body is larger than {limit} bytes" + (
            "; split the import" if imports else ""
        )
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await problem(413, detail)(scope, receive, send)
            return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:  # answered as a problem by the API's HTTPException handler
                raise HTTPException(413, detail)
            return message

        await self.app(scope, bounded, send)


class UnsupportedMediaType(InvalidInput):
    http_status = 415


class Problem(BaseModel):
    """An RFC 9457 problem document, as every error of the API is answered."""

    type: str = "about:blank"
    title: str = Field(description="The HTTP status phrase.")
    status: int
    detail: str = Field(description="What was wrong and where; never a submitted value.")
    errors: list[dict[str, str]] | None = Field(
        default=None, description="On 422: each invalid field and its problem."
    )


def _problems(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the problem documents a route may answer."""
    described = {
        401: "No token, or an unknown, revoked or disabled user's token.",
        403: "The token's role may not do this.",
        404: "No such order or shop.",
        409: "The order's or run's state does not allow it now.",
        413: "The body is larger than the API accepts.",
        415: "The body is not JSON Lines.",
        422: "The request is not valid; `errors` names each field.",
        503: "The database, the archive or the master key cannot do its part now.",
    }
    content = {PROBLEM_JSON: {"schema": Problem.model_json_schema()}}
    return {
        s: {"description": described[s], "content": content} for s in (401, 403, *statuses, 503)
    }


Viewer = Annotated[Account, Depends(api_permission(Permission.VIEW_ORDERS))]
Retriever = Annotated[Account, Depends(api_permission(Permission.RETRIEVE))]
Editor = Annotated[Account, Depends(api_permission(Permission.EDIT_ORDERS))]
Importer = Annotated[Account, Depends(api_permission(Permission.IMPORT))]
DashboardViewer = Annotated[Account, Depends(api_permission(Permission.VIEW_DASHBOARD))]
RunManager = Annotated[Account, Depends(api_permission(Permission.MANAGE_RUNS))]
AuditReader = Annotated[Account, Depends(api_permission(Permission.VIEW_AUDIT))]
FeatureSwitcher = Annotated[Account, Depends(api_permission(Permission.SWITCH_FEATURE))]
ShopSettingsChanger = Annotated[Account, Depends(api_permission(Permission.CHANGE_SHOP_SETTINGS))]
DocumentCreator = Annotated[Account, Depends(api_permission(Permission.CREATE_DOCUMENTS))]
Exporter = Annotated[Account, Depends(api_permission(Permission.EXPORT))]

OrderNr = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_NUMBER_LENGTH,
        description="External order number.",
    ),
]
ShopName = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_NUMBER_LENGTH,
        description="The shop, when several shops have an order with this number.",
    ),
]


class StrictBody(BaseModel):
    """Request bodies: strict JSON types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class OrderList(BaseModel):
    items: list[FoundOrder]
    truncated: bool = Field(description="More orders matched than `limit`; narrow the query.")


class RetrieveRequest(StrictBody):
    reason: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=MAX_RETRIEVAL_REASON_LENGTH
        ),
    ] = Field(description="Why the order is retrieved; stored in the customer history.")


DocumentReason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REASON_LENGTH)
]
Sku = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ItemsRequest(StrictBody):
    """A return or a replacement: quantities per SKU of the order, and why."""

    items: dict[Sku, Annotated[int, Field(ge=1, le=999_999)]] = Field(
        min_length=1,
        max_length=MAX_ITEMS,
        description='Quantity per SKU, e.g. {"BK-1": 1}; at most what is left on the order.',
    )
    reason: DocumentReason = Field(
        description="Why; personal data, masked with the buyer. A masked order is retrieved "
        "first with the document as the reason (cut to 50 characters)."
    )


class CreditRequest(StrictBody):
    total: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)] = (
        Field(description='The amount credited as a decimal string, e.g. "9.99".')
    )
    reason: DocumentReason = Field(description="Why; personal data, masked with the buyer.")


InvoiceNr = Annotated[
    str, Path(min_length=1, max_length=MAX_NUMBER_LENGTH, description="Invoice number.")
]


class AddressChange(StrictBody):
    """The address fields to change (the import's address fields, as wide as their columns);
    fields not given keep their value, null clears one."""

    salutation: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["salutation"])] = None
    first_name: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["first_name"])] = None
    last_name: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["last_name"])] = None
    name2: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["name2"])] = None
    company: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["company"])] = None
    street: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["street"])] = None
    house_nr: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["house_nr"])] = None
    zip: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["zip"])] = None
    city: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["city"])] = None
    state: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["state"])] = None
    country: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["country"])] = None
    phone: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["phone"])] = None
    email: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["email"])] = None
    vat_id: Annotated[str | None, Field(max_length=FIELD_MAX_LENGTH["vat_id"])] = None


class RunRequest(StrictBody):
    dry_run: bool = Field(
        default=False, description="Only count what a run would do; write nothing."
    )


class RunList(BaseModel):
    items: list[RunView]


class AuditEntryDocument(BaseModel):
    seq: int
    at: str = Field(json_schema_extra={"format": "date-time"})
    actor: str
    action: str
    subject: str | None
    detail: dict[str, str | int | None]


class AuditList(BaseModel):
    items: list[AuditEntryDocument]


CustomerReference = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=2, max_length=20)
]


class CustomerMerge(StrictBody):
    keep: CustomerReference = Field(description="The customer to keep (`C<id>`).")
    other: CustomerReference = Field(description="The customer merged into it, then deleted.")


class FeatureSwitch(StrictBody):
    enabled: bool


class FeatureState(BaseModel):
    shop: str
    enabled: bool
    changed: bool = Field(description="False when the feature already was in that state.")


class TaxFieldsChoice(StrictBody):
    keep: list[Literal["vat_id", "zip", "state"]] = Field(
        max_length=3,
        description="The tax fields the shop's invoices and credits keep unmasked; [] masks "
        "them all again (the default).",
    )
    basis: Annotated[str, StringConstraints(max_length=shops.MAX_BASIS)] | None = Field(
        default=None,
        description="The legal basis for keeping them (required when `keep` is not empty), "
        'e.g. "reverse-charge records (UStG §14a)"; recorded and audited.',
    )


class TaxFieldsState(BaseModel):
    shop: str
    kept: list[str] = Field(description="The tax fields kept now, in vat_id, zip, state order.")
    basis: str | None = Field(description="The recorded legal basis; null when none is kept.")


router = APIRouter()


@router.get("/orders", tags=["orders"], responses=_problems(422))
def find_orders(
    app: AppDep,
    _account: Viewer,
    number: Annotated[
        str | None,
        Query(max_length=search.MAX_QUERY_LENGTH, description="Order, invoice or credit number."),
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=search.MAX_QUERY_LENGTH, description="E-mail address or name."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=search.MAX_LIMIT)] = 50,
) -> OrderList:
    """Orders by number (masked orders too) or by e-mail address or name (unmasked data only).
    Give exactly one of `number` and `q`."""
    if (number is None) == (q is None):
        raise InvalidInput("give exactly one of number (order, invoice or credit) and q")
    if number is not None:
        result = search.find(app.ports(), number, limit, by=search.SearchBy.NUMBER)
    else:
        result = search.find(app.ports(), q or "", limit, by=search.SearchBy.PERSONAL_DATA)
    return OrderList(items=result.orders, truncated=result.truncated)


@router.get("/orders/{order_nr}", tags=["orders"], responses=_problems(404, 422))
def show_order(
    app: AppDep, _account: Viewer, order_nr: OrderNr, shop: ShopName = None
) -> OrderDocument:
    """The order with its buyer, addresses, documents, history and retention state: the
    document `shelflife show --json` prints."""
    return inspection.show_order(app.ports(), order_nr, shop=shop)


@router.post("/orders/{order_nr}/retrieve", tags=["orders"], responses=_problems(404, 409, 422))
def retrieve_order(
    app: AppDep, account: Retriever, order_nr: OrderNr, body: RetrieveRequest, shop: ShopName = None
) -> OrderDocument:
    """Restore a masked order's data from the archive, read-only for 30 days, as the token's
    user and with the reason given; answers the order as it is now."""
    retrieval.retrieve_order(app.ports(), order_nr, body.reason, account.name, shop=shop)
    return inspection.show_order(app.ports(), order_nr, shop=shop)


@router.post(
    "/orders/{order_nr}/returns",
    tags=["orders"],
    status_code=201,
    responses=_problems(404, 409, 422),
)
def create_return(
    app: AppDep,
    account: DocumentCreator,
    order_nr: OrderNr,
    body: ItemsRequest,
    shop: ShopName = None,
) -> ReturnCreated:
    """Record a return `<order>-RET<n>` as the token's user. A masked order is retrieved first,
    in the same transaction (503 and nothing created when the archive or key fails)."""
    return after_sales.create_return(
        app.ports(), order_nr, body.items, body.reason, account.name, shop
    )


@router.post(
    "/orders/{order_nr}/replacements",
    tags=["orders"],
    status_code=201,
    responses=_problems(404, 409, 422),
)
def create_replacement(
    app: AppDep,
    account: DocumentCreator,
    order_nr: OrderNr,
    body: ItemsRequest,
    shop: ShopName = None,
) -> ReplacementCreated:
    """Create a replacement order `<order>-R<n>` of the same buyer, linked to the original; a
    masked original is retrieved first, in the same transaction."""
    return after_sales.create_replacement(
        app.ports(), order_nr, body.items, body.reason, account.name, shop
    )


@router.post(
    "/invoices/{invoice_nr}/credits",
    tags=["orders"],
    status_code=201,
    responses=_problems(404, 409, 422),
)
def create_credit(
    app: AppDep,
    account: DocumentCreator,
    invoice_nr: InvoiceNr,
    body: CreditRequest,
    shop: ShopName = None,
) -> CreditCreated:
    """Create a credit `GS-<invoice>-<n>` against an invoice; when the invoice is masked, its
    order is retrieved first, in the same transaction."""
    return after_sales.create_credit(
        app.ports(), invoice_nr, body.total, body.reason, account.name, shop
    )


CreditNr = Annotated[
    str, Path(min_length=1, max_length=MAX_NUMBER_LENGTH, description="Credit number.")
]
_PDF_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
    **_problems(404, 409, 422),
}


def _pdf(data: bytes, name: str) -> Response:
    return Response(
        content=data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def _pdf_name(kind: str, number: str) -> str:
    """A download name from the number, with anything unusual in it replaced."""
    return f"{kind}-{re.sub(r'[^A-Za-z0-9._-]+', '_', number)}.pdf"


@router.get(
    "/invoices/{invoice_nr}/pdf",
    tags=["documents"],
    responses=_PDF_RESPONSES,
    response_class=Response,
)
def invoice_pdf(
    app: AppDep, _account: Viewer, invoice_nr: InvoiceNr, shop: ShopName = None
) -> Response:
    """The invoice's PDF as it was made. 409 while the invoice is masked: its PDF is then in
    the archive only; retrieve the order to bring it back."""
    return _pdf(
        pdfs.document_pdf(app.ports(), "invoice", invoice_nr, shop),
        _pdf_name("invoice", invoice_nr),
    )


@router.get(
    "/credits/{credit_nr}/pdf",
    tags=["documents"],
    responses=_PDF_RESPONSES,
    response_class=Response,
)
def credit_pdf(
    app: AppDep, _account: Viewer, credit_nr: CreditNr, shop: ShopName = None
) -> Response:
    """The credit's PDF as it was made; 409 while the credit is masked (as for invoices)."""
    return _pdf(
        pdfs.document_pdf(app.ports(), "credit", credit_nr, shop), _pdf_name("credit", credit_nr)
    )


def _retrieve_document(
    app: AppDep, account: Account, kind: DocumentKind, number: str, reason: str, shop: str | None
) -> OrderDocument:
    result = retrieval.retrieve_document(app.ports(), kind, number, reason, account.name, shop=shop)
    return inspection.show_order(app.ports(), result.order_nr, shop=result.shop)


@router.post("/invoices/{invoice_nr}/retrieve", tags=["orders"], responses=_problems(404, 409, 422))
def retrieve_invoice(
    app: AppDep,
    account: Retriever,
    invoice_nr: InvoiceNr,
    body: RetrieveRequest,
    shop: ShopName = None,
) -> OrderDocument:
    """Restore a masked invoice with its buyer, found by its number: through its order, or for a
    manual invoice through the buyer's newest Amazon order (which restores the buyer's manual
    documents too); answers that order as it is now."""
    return _retrieve_document(app, account, DocumentKind.INVOICE, invoice_nr, body.reason, shop)


@router.post("/credits/{credit_nr}/retrieve", tags=["orders"], responses=_problems(404, 409, 422))
def retrieve_credit(
    app: AppDep,
    account: Retriever,
    credit_nr: CreditNr,
    body: RetrieveRequest,
    shop: ShopName = None,
) -> OrderDocument:
    """Restore a masked credit with its buyer, found by its number, as `retrieve_invoice` does;
    answers the order retrieved through, as it is now."""
    return _retrieve_document(app, account, DocumentKind.CREDIT, credit_nr, body.reason, shop)


@router.patch(
    "/orders/{order_nr}/addresses/{kind}",
    tags=["orders"],
    responses=_problems(404, 409, 422),
)
def change_address(
    app: AppDep,
    account: Editor,
    order_nr: OrderNr,
    kind: addresses.AddressKind,
    body: AddressChange,
    shop: ShopName = None,
) -> OrderDocument:
    """Correct the billing or shipping address of an order whose data is not masked (409
    while masked or retrieved); the change is audited without its values."""
    addresses.change_address(
        app, order_nr, kind, body.model_dump(exclude_unset=True), account.name, shop=shop
    )
    return inspection.show_order(app.ports(), order_nr, shop=shop)


@router.post(
    "/imports",
    tags=["imports"],
    responses=_problems(413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": f"One order (or manual document) per line; at most "
            f"{MAX_IMPORT_BYTES} bytes.",
            "content": {t: {"schema": {"type": "string"}} for t in IMPORT_MEDIA_TYPES},
        }
    },
)
async def import_orders(request: Request, app: AppDep, _account: Importer) -> ImportReportDocument:
    """Import JSON Lines: good lines land even when others are refused; the answer is the
    per-line report `shelflife import --json` prints (200 even when lines were refused)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in IMPORT_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"send the orders as JSON Lines ({', '.join(IMPORT_MEDIA_TYPES)})"
        )
    body = await request.body()  # bounded by BoundedBodies
    report = await run_in_threadpool(importing.import_lines, app, io.BytesIO(body))
    return report.document()


@router.get("/compliance", tags=["retention"], responses=_problems())
def compliance(app: AppDep, _account: DashboardViewer) -> ComplianceReport:
    """Amazon buyers whose data is unmasked past the limit: violations and holds, as
    `shelflife compliance --json` prints them."""
    return inspection.compliance_document(
        inspection.compliance_report(app.ports()),
        check_export_warnings(app.ports()).messages(),
        open_archive_problems(app.ports()),
    )


@router.get(
    "/exports/accounting",
    tags=["exports"],
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **_problems(404, 422),
    },
    response_class=Response,
)
def accounting_export(
    app: AppDep,
    account: Exporter,
    first: Annotated[date, Query(alias="from", description="First day, inclusive.")],
    last: Annotated[date, Query(alias="to", description="Last day, inclusive.")],
    shop: Annotated[str | None, Query(max_length=100, description="Only this shop.")] = None,
) -> Response:
    """The accounting CSV of a period (docs/accounting-export.md), as `shelflife export
    accounting` writes it; recorded and audited the same way. Masked documents carry their
    masked names: export before masking."""
    result = export_accounting(app.ports(), first, last, shop, account.name)
    name = f"accounting-{first.isoformat()}-{last.isoformat()}.csv"
    return Response(
        content=result.data,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/exports/invoices",
    tags=["exports"],
    responses={
        200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
        **_problems(404, 422),
    },
    response_class=Response,
)
def invoices_export(
    app: AppDep,
    account: Exporter,
    first: Annotated[date, Query(alias="from", description="First day, inclusive.")],
    last: Annotated[date, Query(alias="to", description="Last day, inclusive.")],
    shop: Annotated[str | None, Query(max_length=100, description="Only this shop.")] = None,
) -> Response:
    """The PDFs of a period's invoices and credits as a ZIP with `manifest.csv` and
    `SHA256SUMS`, as `shelflife export invoices` writes it; recorded and audited the same way.
    Masked documents are listed as masked, without their PDF: export before masking."""
    with tempfile.TemporaryDirectory(prefix="shelflife-export-") as folder:
        out = FilePath(folder) / "invoices.zip"
        export_invoices(app.ports(), first, last, shop, account.name, out)
        data = out.read_bytes()
    name = f"invoices-{first.isoformat()}-{last.isoformat()}.zip"
    return Response(
        content=data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/runs", tags=["retention"], responses=_problems(422))
def list_runs(
    app: AppDep,
    _account: RunManager,
    limit: Annotated[int, Query(ge=1, le=run_views.MAX_RUNS)] = 20,
) -> RunList:
    """The most recently started runs, newest first."""
    return RunList(items=run_views.list_runs(app.ports(), limit))


_RUNNING = threading.Lock()
"""One run at a time from this server: a second request while one works gets 409."""


@router.post("/runs", tags=["retention"], responses=_problems(409, 422))
def start_run(app: AppDep, account: RunManager, body: RunRequest) -> pipeline.RunReport:
    """Run everything due now (retry, archive, verify, mask, re-mask) and answer its report;
    with `dry_run`, only count what a run would do."""
    if body.dry_run:
        return pipeline.dry_run(app.ports())
    if not _RUNNING.acquire(blocking=False):
        raise Conflict("a run started from the API is still working; see GET /runs")
    try:
        return pipeline.run_retention(app.ports(), actor=account.name)
    finally:
        _RUNNING.release()


@router.get("/audit", tags=["audit"], responses=_problems(422))
def audit_entries(
    app: AppDep,
    _account: AuditReader,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> AuditList:
    """The newest audit entries, newest first: who did what, when, to which order or shop."""
    return AuditList(
        items=[
            AuditEntryDocument(
                seq=e.seq,
                at=e.at.isoformat(),
                actor=e.actor,
                action=e.action,
                subject=e.subject,
                detail=dict(e.detail),
            )
            for e in audit.recent_entries(app.ports(), limit)
        ]
    )


@router.put("/shops/{shop}/feature", tags=["shops"], responses=_problems(404, 422))
def switch_feature(
    app: AppDep,
    account: FeatureSwitcher,
    shop: Annotated[str, Path(min_length=1, max_length=MAX_NUMBER_LENGTH)],
    body: FeatureSwitch,
) -> FeatureState:
    """Switch retention on or off for a shop; recorded with the token's user and the time."""
    changed = shops.set_feature(app.ports(), shop, body.enabled, account.name)
    return FeatureState(shop=shop, enabled=body.enabled, changed=changed)


@router.put("/shops/{shop}/tax-fields", tags=["shops"], responses=_problems(404, 422))
def choose_tax_fields(
    app: AppDep,
    account: ShopSettingsChanger,
    shop: Annotated[str, Path(min_length=1, max_length=MAX_NUMBER_LENGTH)],
    body: TaxFieldsChoice,
) -> TaxFieldsState:
    """Keep exactly these tax fields (VAT ID, postcode, region) of the shop's invoices and
    credits unmasked from the next masking on, under the legal basis given; recorded in the
    audit log (`shop.tax_fields`) with the token's user. Names, street, phone and e-mail are
    masked whatever is chosen."""
    view = shops.set_tax_fields(app.ports(), shop, body.keep, body.basis, account.name)
    return TaxFieldsState(
        shop=view.name, kept=list(view.kept_tax_fields), basis=view.tax_fields_basis
    )


@router.get("/customers/duplicates", tags=["customers"], responses=_problems(422))
def list_duplicates(
    app: AppDep,
    _account: Viewer,
    shop: Annotated[str | None, Query(min_length=1, max_length=MAX_NUMBER_LENGTH)] = None,
) -> DuplicatesReport:
    """Customer records that look like one person (same first and last name, city, postcode,
    company, shop and channel), by reference only; archived and masked buyers never appear."""
    return customers.find_duplicates(app.ports(), shop)


@router.post("/customers/merge", tags=["customers"], responses=_problems(404, 409, 422))
def merge_customers(app: AppDep, account: Editor, body: CustomerMerge) -> MergeResult:
    """Move `other`'s orders, addresses, documents and history to `keep` and delete `other`;
    409 when either is archived or masked, or they belong to different shops or channels.
    Recorded in the audit log with the token's user."""
    return customers.merge_customers(app.ports(), body.keep, body.other, account.name)
