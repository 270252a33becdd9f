"""Realistic, obviously fake orders for the demo and the benchmark.

shelflife exists to handle real buyers' personal data, so real data must never serve as demo
material, test fixture or benchmark load. This module writes orders in the JSON Lines import
format instead: Faker names, streets, IBANs and (random, Luhn-valid) card numbers from European
locales, e-mail addresses on the reserved ``example.*`` domains. Output is deterministic for a given
``SampleSpec`` (same spec, same Faker version: same bytes) and is streamed one order at a time,
so a million customers need no more memory than ten.

Everything in the output happens before ``start + days`` (the moment of the "export"): orders
that would ship, be cancelled or be credited later are left open, as a real shop would see them.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Generic, TextIO, TypeVar

from faker import Faker

__all__ = ["SampleSpec", "generate_orders", "write_jsonl"]

_T = TypeVar("_T")

_DAY = 86_400

# (Faker locale, ISO country, weight): mostly German buyers, some from the neighbours.
_LOCALES: tuple[tuple[str, str, int], ...] = (
    ("de_DE", "DE", 70),
    ("de_AT", "AT", 10),
    ("fr_FR", "FR", 7),
    ("nl_NL", "NL", 7),
    ("it_IT", "IT", 6),
)
# (male, female) salutation per locale.
_SALUTATIONS: dict[str, tuple[str, str]] = {
    "de_DE": ("Herr", "Frau"),
    "de_AT": ("Herr", "Frau"),
    "fr_FR": ("M.", "Mme"),
    "nl_NL": ("Dhr.", "Mevr."),
    "it_IT": ("Sig.", "Sig.ra"),
}
_MAIL_DOMAINS = ("example.org", "example.com", "example.net")
_AMAZON_PREFIXES = ("302", "303", "304", "305", "306", "028")
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Orders mostly arrive in the day and evening (relative weight per UTC hour).
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 6, 8, 9, 9, 9, 10, 9, 8, 8, 8, 9, 10, 12, 12, 10, 6, 3)

_PRODUCTS = (
    "Notizbuch",
    "Kaffeebecher",
    "Regalbrett",
    "Schreibtischlampe",
    "Buchstütze",
    "Vorratsglas",
    "Leinentasche",
    "Duftkerze",
    "Bilderrahmen",
    "Thermoskanne",
    "Gewürzregal",
    "Brotkasten",
    "Schneidebrett",
    "Wandhaken",
    "Zeitschriftensammler",
)
_MATERIALS = ("aus Eiche", "aus Bambus", "aus Leinen", "Steingut", "Emaille", "recycelt", "Glas")
_VARIANTS = ("A5", "350 ml", "40 cm", "2er-Set", "grau", "salbeigrün", "naturweiß", "anthrazit")

_GIFT_MESSAGES = (
    "Alles Gute zum Geburtstag, {first}!",
    "Herzlichen Glückwunsch und viel Freude damit!",
    "Frohe Weihnachten wünschen dir {first} und Familie",
    "Danke für alles! Liebe Grüße",
    "Zum Einzug ins neue Zuhause – alles Liebe!",
    "Gute Besserung, {first}!",
)
_ADDRESS_REMARKS = (
    "Bitte beim Nachbarn abgeben",
    "Hinterhaus, 2. OG",
    "Paket bitte in die Garage legen",
    "Klingel defekt, bitte anrufen",
    "Lieferung nur vormittags",
    "Abstellgenehmigung: Terrasse",
)
_SHOP_NOTES = (
    "Kunde wünscht Rückruf",
    "Ersatzlieferung für beschädigte Ware",
    "Geschenkverpackung gewünscht",
    "Rechnung bitte zusätzlich per Post",
    "Adresse telefonisch bestätigt",
)
_CUSTOMER_NOTES = (
    "Stammkunde",
    "Bitte nur per E-Mail kontaktieren",
    "Gewerbekunde, Rechnung mit USt-IdNr.",
    "Hat Reklamation im Vorjahr",
)
_MAIL_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


@dataclass(frozen=True)
class SampleSpec:
    """What to generate: ``customers`` buyers whose orders fall in ``[start, start + days)``."""

    customers: int
    start: datetime  # aware; first order date
    days: int  # orders spread over this many days from start
    shops: tuple[str, ...] = ("main", "outlet")
    amazon_share: float = 0.7  # share of customers who buy on Amazon
    seed: int = 1

    def __post_init__(self) -> None:
        if self.customers < 0:
            raise ValueError("customers must not be negative")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be an aware datetime")
        if self.days < 1:
            raise ValueError("days must be at least 1")
        if not self.shops:
            raise ValueError("shops must not be empty")
        if not 0.0 <= self.amazon_share <= 1.0:
            raise ValueError("amazon_share must be between 0 and 1")


def generate_orders(spec: SampleSpec) -> Iterator[dict[str, object]]:
    """Yield the orders of ``spec`` one at a time, customer by customer.

    Each customer's 1-3 orders come out together and in chronological order; customers come
    out in a fixed (not chronological) order. Exactly ``round(amazon_share * customers)``
    customers buy on Amazon.
    """
    gen = _Generator(spec)
    for index in range(spec.customers):
        yield from gen.customer_orders(index)


def write_jsonl(spec: SampleSpec, out: TextIO) -> int:
    """Write the orders of ``spec`` to ``out`` as JSON Lines and return how many there were.

    Lines are UTF-8 text (``ensure_ascii=False``), so open ``out`` with ``encoding="utf-8"``.
    """
    count = 0
    for order in generate_orders(spec):
        out.write(json.dumps(order, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        count += 1
    return count


def _coprime_multiplier(rng: random.Random, modulus: int) -> int:
    """A random multiplier that makes ``n -> (a * n + b) % modulus`` a permutation."""
    if modulus <= 2:
        return 1
    while True:
        candidate = rng.randrange(modulus // 4, 3 * modulus // 4 + 1)
        if math.gcd(candidate, modulus) == 1:
            return candidate


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _mail_part(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower().translate(_MAIL_FOLD))
    return re.sub(r"[^a-z0-9]+", "", folded.encode("ascii", "ignore").decode("ascii"))


def _ts(moment: datetime) -> str:
    return moment.isoformat()


class _Weighted(Generic[_T]):
    """A weighted choice that, unlike ``random.choices``, does not re-add the weights each time."""

    def __init__(self, values: Sequence[_T], weights: Sequence[int]) -> None:
        self._values = tuple(values)
        self._cumulative: list[int] = []
        running = 0
        for weight in weights:
            running += weight
            self._cumulative.append(running)
        self._total = running

    def pick(self, rng: random.Random) -> _T:
        return self._values[bisect.bisect(self._cumulative, rng.random() * self._total)]


_HOURS = _Weighted(range(24), _HOUR_WEIGHTS)
_ONE_TO_THREE = {
    "orders": _Weighted((1, 2, 3), (70, 20, 10)),
    "items": _Weighted((1, 2, 3), (60, 28, 12)),
    "qty": _Weighted((1, 2, 3), (80, 15, 5)),
}
_REGIONS = _Weighted(
    [(locale, country) for locale, country, _ in _LOCALES], [w for *_, w in _LOCALES]
)


class _Pool:
    """Faker values for one field: the first ``size`` come from Faker, later ones are re-drawn.

    Faker takes 5-40 µs a value; re-drawing names, streets and cities from a pool keeps a
    million customers affordable, and repeated street or city names are realistic anyway.
    """

    def __init__(self, make: Callable[[], str], rng: random.Random, size: int = 2_000) -> None:
        self._make = make
        self._rng = rng
        self._size = size
        self._values: list[str] = []

    def __call__(self) -> str:
        if len(self._values) < self._size:
            value = self._make()
            self._values.append(value)
            return value
        return self._rng.choice(self._values)


class _LocaleData:
    """One seeded Faker plus pools for the fields whose repetition does no harm."""

    def __init__(self, locale: str, seed: str, rng: random.Random) -> None:
        faker = Faker(locale)
        faker.seed_instance(seed)
        # Faker's it_IT city list is built from a set, so its order (and thus every city drawn)
        # would depend on PYTHONHASHSEED. Sorted, the output is the same in every process.
        for provider in faker.get_providers():
            cities = getattr(provider, "cities", None)
            if isinstance(cities, list):
                vars(provider)["cities"] = sorted(cities)
        self.faker = faker
        self.first_name_female = _Pool(faker.first_name_female, rng)
        self.first_name_male = _Pool(faker.first_name_male, rng)
        self.last_name = _Pool(faker.last_name, rng)
        self.company = _Pool(faker.company, rng)
        self.street_name = _Pool(faker.street_name, rng)
        self.building_number = _Pool(faker.building_number, rng, size=500)
        self.postcode = _Pool(faker.postcode, rng)
        self.city = _Pool(faker.city, rng)
        self.state = _Pool(faker.administrative_unit, rng, size=100)
        self._phone = _Pool(faker.phone_number, rng, size=1_000)
        self._rng = rng

    def phone(self) -> str:
        """A Faker phone number from the pool with its last four digits drawn afresh."""
        chars = list(self._phone())
        fresh = f"{self._rng.randrange(10_000):04d}"
        todo = len(fresh)
        for pos in range(len(chars) - 1, -1, -1):
            if todo == 0:
                break
            if chars[pos].isdigit():
                todo -= 1
                chars[pos] = fresh[todo]
        return "".join(chars)

    def first_name(self, female: bool) -> str:
        return self.first_name_female() if female else self.first_name_male()


@dataclass(frozen=True)
class _Person:
    locale: str
    country: str
    salutation: str | None
    first_name: str
    last_name: str
    company: str | None
    email: str
    phone: str | None


class _Generator:
    """All state of one ``generate_orders`` run: RNGs, Fakers, counters, the catalogue."""

    # Ranges for the counter-derived identifiers; permutations keep them unique but unordered.
    _AMAZON_SPACE = 10**14
    _BUYER_SPACE = 36**13

    def __init__(self, spec: SampleSpec) -> None:
        self.spec = spec
        self.rng = random.Random(f"shelflife-sample-{spec.seed}")
        self.start = spec.start.astimezone(UTC).replace(microsecond=0)
        self.end = self.start + timedelta(days=spec.days)
        self.locales = {
            locale: _LocaleData(locale, f"{spec.seed}-{locale}", self.rng)
            for locale, _country, _weight in _LOCALES
        }
        # The first shop takes the bulk of the customers.
        self.shops = _Weighted(spec.shops, [3] + [1] * (len(spec.shops) - 1))

        # Which customers buy on Amazon: slot(i) = (a * i + b) % customers is a permutation, and
        # the customers whose slot falls below the quota are the Amazon ones.
        n = max(spec.customers, 1)
        self.channel_a = _coprime_multiplier(self.rng, n)
        self.channel_b = self.rng.randrange(n)
        self.amazon_quota = round(spec.amazon_share * spec.customers)
        self.amazon_a = _coprime_multiplier(self.rng, self._AMAZON_SPACE)
        self.amazon_b = self.rng.randrange(self._AMAZON_SPACE)
        self.buyer_a = _coprime_multiplier(self.rng, self._BUYER_SPACE)
        self.buyer_b = self.rng.randrange(self._BUYER_SPACE)

        self.catalogue = self._catalogue(40)
        self.amazon_orders = 0
        self.shop_orders = 0
        self.shop_customers = 0
        self.invoices: dict[int, int] = {}  # per-year counters
        self.credits: dict[int, int] = {}

    # -- identifiers ------------------------------------------------------------------------

    def _is_amazon(self, index: int) -> bool:
        slot = (self.channel_a * index + self.channel_b) % max(self.spec.customers, 1)
        return slot < self.amazon_quota

    def _amazon_order_nr(self) -> str:
        value = (self.amazon_a * self.amazon_orders + self.amazon_b) % self._AMAZON_SPACE
        self.amazon_orders += 1
        prefix = self.rng.choice(_AMAZON_PREFIXES)
        return f"{prefix}-{value // 10**7:07d}-{value % 10**7:07d}"

    def _buyer_id(self, index: int) -> str:
        value = (self.buyer_a * index + self.buyer_b) % self._BUYER_SPACE
        chars = []
        for _ in range(13):
            value, digit = divmod(value, 36)
            chars.append(_ALNUM[digit])
        return "A" + "".join(chars)

    def _shop_order_nr(self) -> str:
        self.shop_orders += 1
        return f"WEB-{self.shop_orders:06d}"

    def _next_nr(self, counters: dict[int, int], prefix: str, moment: datetime) -> str:
        counters[moment.year] = counters.get(moment.year, 0) + 1
        return f"{prefix}-{moment.year}-{counters[moment.year]:06d}"

    # -- people -----------------------------------------------------------------------------

    def _catalogue(self, size: int) -> list[tuple[str, str, int]]:
        items = []
        for number in range(size):
            title = (
                f"{self.rng.choice(_PRODUCTS)} {self.rng.choice(_MATERIALS)}, "
                f"{self.rng.choice(_VARIANTS)}"
            )
            cents = self.rng.randrange(4, 150) * 100 - self.rng.choice((1, 1, 1, 5, 51))
            items.append((f"SL-{10_000 + number * 7:05d}", title, cents))
        return items

    def _person(self, index: int) -> _Person:
        rng = self.rng
        locale, country = _REGIONS.pick(rng)
        data = self.locales[locale]
        female = rng.random() < 0.5
        first = data.first_name(female)
        last = data.last_name()
        salutation = _SALUTATIONS[locale][female] if rng.random() < 0.85 else None
        company = data.company() if rng.random() < 0.1 else None
        first_part, last_part = _mail_part(first) or "kunde", _mail_part(last) or "kunde"
        local = rng.choice(
            (
                f"{first_part}.{last_part}",
                f"{first_part[0]}.{last_part}",
                f"{last_part}.{first_part}",
                f"{first_part}{last_part}",
            )
        )
        # The customer index as suffix makes every address unique (the names end in a letter).
        email = f"{local}{index + 1}@{rng.choice(_MAIL_DOMAINS)}"
        phone = data.phone() if rng.random() < 0.7 else None
        return _Person(locale, country, salutation, first, last, company, email, phone)

    def _address(self, person: _Person, *, recipient: bool = False) -> dict[str, str | None]:
        rng = self.rng
        data = self.locales[person.locale]
        if recipient:  # somebody else: a gift, the office, the neighbour
            female = rng.random() < 0.5
            first = data.first_name(female)
            last = data.last_name() if rng.random() < 0.7 else person.last_name
            salutation: str | None = _SALUTATIONS[person.locale][female]
            company = data.company() if rng.random() < 0.15 else None
        else:
            first, last = person.first_name, person.last_name
            salutation, company = person.salutation, person.company
        name2 = f"c/o {data.last_name()}" if rng.random() < 0.03 else None
        return {
            "salutation": salutation,
            "first_name": first,
            "last_name": last,
            "name2": name2,
            "company": company,
            "street": data.street_name(),
            "house_nr": data.building_number(),
            "zip": data.postcode(),
            "city": data.city(),
            "state": data.state() if rng.random() < 0.2 else None,
            "country": person.country,
            "phone": None if recipient else person.phone,
            "email": None if recipient else person.email,
            "vat_id": None,
        }

    def _customer(self, person: _Person, nr: str | None) -> dict[str, str | None]:
        rng = self.rng
        data = self.locales[person.locale]
        birth_date = None
        if rng.random() < 0.25:
            birth_date = self.start.date() - timedelta(days=rng.randrange(18 * 365, 85 * 365))
        return {
            "customer_nr_external": nr,
            "salutation": person.salutation,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "company": person.company,
            "email": person.email,
            "phone": person.phone,
            "fax": data.phone() if rng.random() < 0.05 else None,
            "birth_date": _iso_date(birth_date),
            "note": rng.choice(_CUSTOMER_NOTES) if rng.random() < 0.05 else None,
            "vat_id": None,
        }

    def _payment(self, person: _Person) -> dict[str, str | None] | None:
        rng = self.rng
        if rng.random() >= 0.6:
            return None
        data = self.locales[person.locale]
        holder = f"{person.first_name} {person.last_name}"
        payment: dict[str, str | None] = dict.fromkeys(
            ("card_type", "card_name", "card_nr", "card_exp", "account", "account_name", "iban")
        )
        if rng.random() < 0.45:
            card_type, label = rng.choice(
                (("visa", "Visa"), ("mastercard", "Mastercard"), ("amex", "American Express"))
            )
            exp_year = self.start.year + rng.randint(1, 5)
            payment["card_type"] = label
            payment["card_name"] = holder.upper()
            payment["card_nr"] = data.faker.credit_card_number(card_type=card_type)
            payment["card_exp"] = f"{rng.randint(1, 12):02d}/{exp_year % 100:02d}"
        else:
            iban = data.faker.iban()
            payment["iban"] = iban
            payment["account_name"] = holder
            if iban.startswith("DE"):  # Kontonummer: the last ten digits of a German IBAN
                payment["account"] = iban[12:].lstrip("0")
        return payment

    # -- orders -----------------------------------------------------------------------------

    def _order_times(self, count: int) -> list[datetime]:
        """``count`` moments in ``[start, end)``, oldest first, mostly at daytime hours.

        The hour weights count from the start's time of day (midnight for the usual spec).
        """
        rng = self.rng
        offsets = [
            rng.randrange(self.spec.days) * _DAY + _HOURS.pick(rng) * 3600 + rng.randrange(3600)
            for _ in range(count)
        ]
        return [self.start + timedelta(seconds=offset) for offset in sorted(offsets)]

    def customer_orders(self, index: int) -> list[dict[str, object]]:
        """The 1-3 orders of customer ``index``, oldest first."""
        rng = self.rng
        shop = self.shops.pick(rng)
        amazon = self._is_amazon(index)
        person = self._person(index)
        if amazon:
            nr = self._buyer_id(index) if rng.random() < 0.95 else None
        else:
            self.shop_customers += 1
            nr = f"K{self.shop_customers:07d}"
        customer = self._customer(person, nr)
        billing = self._address(person)
        payment = self._payment(person)

        count = _ONE_TO_THREE["orders"].pick(rng)
        orders: list[dict[str, object]] = []
        for ordered_at in self._order_times(count):
            order_nr = self._amazon_order_nr() if amazon else self._shop_order_nr()
            orders.append(
                self._order(shop, order_nr, ordered_at, person, customer, billing, payment)
            )
        return orders

    def _order(
        self,
        shop: str,
        order_nr: str,
        ordered_at: datetime,
        person: _Person,
        customer: dict[str, str | None],
        billing: dict[str, str | None],
        payment: dict[str, str | None] | None,
    ) -> dict[str, object]:
        rng = self.rng
        shipping = self._address(person, recipient=True) if rng.random() < 0.2 else dict(billing)

        items: list[dict[str, object]] = []
        total = 0
        for _ in range(_ONE_TO_THREE["items"].pick(rng)):
            sku, title, cents = rng.choice(self.catalogue)
            qty = _ONE_TO_THREE["qty"].pick(rng)
            items.append({"sku": sku, "title": title, "qty": qty, "price": _money(cents)})
            total += qty * cents

        shipped_at = cancelled_at = None
        if rng.random() < 0.03:
            cancelled_at = ordered_at + timedelta(seconds=rng.randrange(600, _DAY))
            if cancelled_at >= self.end:  # not yet cancelled at export time: still open
                cancelled_at = None
        else:
            shipped_at = ordered_at + timedelta(seconds=rng.randrange(_DAY, 4 * _DAY + 1))
            if shipped_at >= self.end:  # ships after the export: still open
                shipped_at = None

        invoices: list[dict[str, object]] = []
        credits: list[dict[str, object]] = []
        if shipped_at is not None:
            invoice_nr = self._next_nr(self.invoices, "RE", shipped_at)
            invoices.append(
                {"invoice_nr": invoice_nr, "created_at": _ts(shipped_at), "total": _money(total)}
            )
            if rng.random() < 0.05:
                credited_at = shipped_at + timedelta(seconds=rng.randrange(5 * _DAY, 20 * _DAY))
                if credited_at < self.end:
                    refunded = rng.choice(items)  # one unit of one item came back
                    credits.append(
                        {
                            "credit_nr": self._next_nr(self.credits, "GS", credited_at),
                            "invoice_nr": invoice_nr,
                            "created_at": _ts(credited_at),
                            "total": refunded["price"],
                        }
                    )

        gift = None
        if rng.random() < 0.1:
            gift = rng.choice(_GIFT_MESSAGES).format(first=shipping["first_name"])
        remarks = rng.choice(_ADDRESS_REMARKS) if rng.random() < 0.1 else None
        shop_note = rng.choice(_SHOP_NOTES) if rng.random() < 0.05 else None

        return {
            "shop": shop,
            "order_nr_external": order_nr,
            "ordered_at": _ts(ordered_at),
            "shipped_at": _ts(shipped_at) if shipped_at is not None else None,
            "cancelled_at": _ts(cancelled_at) if cancelled_at is not None else None,
            "customer": dict(customer),
            "billing_address": dict(billing),
            "shipping_address": shipping,
            "payment": dict(payment) if payment is not None else None,
            "gift_message": gift,
            "address_remarks": remarks,
            "shop_note": shop_note,
            "items": items,
            "invoices": invoices,
            "credits": credits,
        }


def _iso_date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None
