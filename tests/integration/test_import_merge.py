"""On SQLite and PostgreSQL: a buyer's record depends only on which orders were imported, not on
their sequence, the batch size, or which writer (set-based or per line) stored them.

The database URL and scratch folder are function-scoped fixtures used by many Hypothesis
examples; each example therefore empties the tables itself (hence the suppressed health check).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from shelflife.adapters.db.order_writer import OrderWriter, Outcome
from shelflife.adapters.db.tables import Address, Base, Customer, Order
from shelflife.bootstrap import App
from shelflife.domain.customer_merge import BUYER_FIELDS
from shelflife.domain.records import OrderRecord, parse_record
from shelflife.services.importing import import_lines
from tests.support.builders import T0, days, lines, make_app, order

EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)

maybe = st.none() | st.just("") | st.sampled_from(["a", "b"])


@st.composite
def orders_of_two_buyers(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Orders of buyers KD-0 and KD-1 whose customer blocks, addresses and payments differ,
    at few distinct times (ties are decided by the order number)."""
    count = draw(st.integers(2, 7))
    result = []
    for n in range(count):
        buyer = draw(st.integers(0, 1))
        data = order(
            f"30{buyer}-0000000-{n:07d}",
            ordered_at=T0 + days(draw(st.integers(0, 2))),
            suffix=f"-{n}",
        )
        data["customer"] = {
            "customer_nr_external": f"KD-{buyer}",
            "first_name": draw(maybe),
            "email": draw(maybe),
            "phone": draw(maybe),
            "birth_date": draw(st.none() | st.sampled_from(["1980-05-01", "1990-02-03"])),
        }
        data["billing_address"] = draw(
            st.none()
            | st.fixed_dictionaries(
                {
                    "street": maybe,
                    "house_nr": maybe,
                    "city": maybe,
                    "country": st.none() | st.sampled_from(["DE", "AT"]),
                }
            )
        )
        data["payment"] = draw(
            st.none() | st.fixed_dictionaries({"card_nr": maybe, "card_exp": maybe})
        )
        if draw(st.booleans()):
            del data["shipping_address"]
        result.append(data)
    return result


def _empty(engine: Engine, *, keep_installation: bool = True) -> None:
    """Delete every row; the installation row (the recorded key) only at the end of an example,
    since each example initialises a new home with a new master key."""
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "installation" or not keep_installation:
                conn.execute(table.delete())


def _state(app: App) -> tuple[dict[str | None, dict[str, Any]], dict[tuple[str, str], Any]]:
    """Buyers by identity (values and provenance) and order addresses by (order, kind)."""
    with app.engine.connect() as conn:
        buyers = {
            r.identity_digest: r._asdict()
            for r in conn.execute(
                select(
                    Customer.identity_digest,
                    Customer.pii_sources,
                    *[getattr(Customer, c) for c in BUYER_FIELDS],
                )
            )
        }
        skip = {"id", "customer_id", "order_id"}
        addresses = {
            (r.order_nr_external, r.kind): {k: v for k, v in r._asdict().items() if k not in skip}
            for r in conn.execute(
                select(Address.__table__, Order.order_nr_external).join(
                    Order, Order.id == Address.order_id
                )
            )
        }
    return buyers, addresses


def _revisions(app: App) -> dict[int, int]:
    with app.engine.connect() as conn:
        return {
            r.id: r.pii_revision for r in conn.execute(select(Customer.id, Customer.pii_revision))
        }


def _per_line(app: App, orders: list[dict[str, Any]]) -> None:
    """The per-line writer, which the import uses when a batch's bulk insert fails."""
    with app.engine.connect() as conn:
        writer = OrderWriter(conn, app.keys.identity_digest, app.clock.now())
        for data in orders:
            record = parse_record(data)
            assert isinstance(record, OrderRecord)
            with conn.begin():
                assert writer.apply(record) is Outcome.CREATED


@given(orders_of_two_buyers(), st.randoms(use_true_random=False))
@EXAMPLES
def test_buyers_do_not_depend_on_sequence_batch_size_or_writer(
    database_url: str, tmp_path: Path, orders: list[dict[str, Any]], rnd: Any
) -> None:
    app, _clock = make_app(database_url, tmp_path / uuid.uuid4().hex)
    try:
        states = []
        for how in ("one batch", "batches of one", "per line"):
            _empty(app.engine)
            sequence = list(orders)
            rnd.shuffle(sequence)
            if how == "per line":
                _per_line(app, sequence)
            else:
                size = len(sequence) if how == "one batch" else 1
                report = import_lines(app, lines(*sequence), batch_size=size)
                assert (report.created, report.refused) == (len(orders), [])
            states.append(_state(app))
        assert states[1] == states[0]
        assert states[2] == states[0]
        revisions = _revisions(app)
        again = list(orders)
        rnd.shuffle(again)

        report = import_lines(app, lines(*again), batch_size=rnd.randint(1, len(again)))

        assert (report.updated, report.unchanged, report.refused) == (0, len(orders), [])
        assert _revisions(app) == revisions
        assert _state(app) == states[0]
    finally:
        _empty(app.engine, keep_installation=False)
        app.close()
