"""Search and retrieval latency over HTTP on a backlog of archived and masked buyers.

A fresh home on SQLite gets N generated customers (`generate.py`, as the backlog benchmark),
the nightly run archives and masks them, and `shelflife serve` serves the home in a
subprocess. Then, over one keep-alive HTTP connection, it times:

- search: GET of `--search-path` for R distinct invoice numbers of masked orders
  (default the API, `/api/v1/orders?number={number}`);
- retrieval: POST of `--retrieve-path` for R distinct masked orders (default the API,
  `/api/v1/orders/{order}/retrieve` with `{"reason": …}`; with `--auth session`, the page's
  form with a reason and the session's CSRF token).

It prints p50, p99, mean and max per endpoint and writes them to bench/out/. The targets
(search p99 < 20 ms, retrieval p99 < 50 ms) are reported, never asserted.

    .venv/bin/python bench/http_latency.py --customers 100000 --requests 500
    .venv/bin/python bench/http_latency.py --customers 2000 --auth session \\
        --search-path '/orders?q={number}' --retrieve-path '/orders/{order}/retrieve'
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from sqlalchemy import create_engine, select

from generate import DEFAULT_DAYS, DEFAULT_START, OUT_DIR, ensure_orders, make_spec, positive_int
from shelflife.adapters.db.tables import Invoice, Order

AS_OF = "2026-06-01T02:00:00+02:00"  # three months after the last shipment: all masked
USER = "bench"
PASSWORD = "bench-password-not-secret"
TARGETS_MS = {"search": 20.0, "retrieval": 50.0}
WARM_UP = 5


class BenchError(Exception):
    pass


@dataclass
class Figures:
    endpoint: str
    requests: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    target_p99_ms: float

    @classmethod
    def of(cls, endpoint: str, seconds: list[float], target: float) -> Figures:
        ms = sorted(s * 1000 for s in seconds)
        return cls(
            endpoint=endpoint,
            requests=len(ms),
            p50_ms=round(statistics.median(ms), 2),
            p99_ms=round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
            mean_ms=round(statistics.fmean(ms), 2),
            max_ms=round(ms[-1], 2),
            target_p99_ms=target,
        )


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    script = Path(sys.executable).parent / "shelflife"
    done = subprocess.run(
        [str(script), *args], input=stdin, capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"`shelflife {' '.join(args)}` exited {done.returncode}: {done.stderr}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(home: Path, customers: int) -> dict[str, str]:
    """A home with N customers imported, every shop enabled, the backlog archived and masked."""
    data = ensure_orders(make_spec(customers, DEFAULT_START, DEFAULT_DAYS, 1))
    shutil.rmtree(home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHELFLIFE_")}
    env |= {"SHELFLIFE_HOME": str(home), "SHELFLIFE_RETRIEVAL_ALERT_PER_HOUR": "10000"}
    began = time.perf_counter()
    _cli(env, "init")
    _cli(env, "import", str(data.path), "--json")
    for shop in json.loads(_cli(env, "shop", "list", "--json")):
        _cli(env, "feature", "enable", "--shop", shop["name"])
    report = json.loads(_cli(env, "run", "--as-of", AS_OF, "--json"))
    _cli(env, "user", "add", USER, "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    print(
        f"prepared {data.contents.orders} orders in {time.perf_counter() - began:.0f} s: "
        f"archived {report['archived']}, masked {report['masked']}"
    )
    return env


def masked_orders(home: Path, count: int) -> list[tuple[str, str]]:
    """(order number, invoice number) of `count` distinct masked orders, in random order."""
    engine = create_engine(f"sqlite:///{home}/shelflife.db")
    with engine.connect() as conn:
        rows = conn.execute(
            select(Order.order_nr_external, Invoice.invoice_nr)
            .join(Invoice, Invoice.order_id == Order.id)
            .where(Order.masked_at.is_not(None), Order.is_amazon.is_(True))
        ).all()
    engine.dispose()
    picked = random.Random(7).sample(rows, min(len(rows), count))
    if len(picked) < count:
        raise BenchError(f"only {len(picked)} masked orders with an invoice; use more customers")
    return [(r[0], r[1]) for r in picked]


class Client:
    """One keep-alive connection, authenticated by an API token or a signed-in session."""

    def __init__(self, port: int, env: dict[str, str], auth: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers: dict[str, str] = {}
        self.csrf = ""
        if auth == "token":
            token = json.loads(_cli(env, "token", "create", USER, "--json"))["token"]
            self.headers["Authorization"] = f"Bearer {token}"
        else:
            self._sign_in()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        self.conn.request(method, path, body=body, headers={**self.headers, **(headers or {})})
        response = self.conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        received: dict[str, str] = {}
        for name, value in response.getheaders():  # cookies joined: several Set-Cookie lines
            key = name.lower()
            received[key] = f"{received[key]}, {value}" if key in received else value
        return response.status, text, received

    def _sign_in(self) -> None:
        _status, page, headers = self.request("GET", "/login")
        cookie = headers.get("set-cookie", "").split(";")[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if token is None:
            raise BenchError("the login page has no CSRF token")
        form = urlencode({"user_name": USER, "password": PASSWORD, "csrf_token": token.group(1)})
        status, _page, headers = self.request(
            "POST",
            "/login",
            form.encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        )
        session = next(
            (
                part.strip()
                for part in re.split(r"[;,]", headers.get("set-cookie", ""))
                if part.strip().startswith("shelflife_session=")
            ),
            "",
        )
        if status != 303 or not session:
            raise BenchError(f"signing in failed with HTTP {status}")
        self.headers["Cookie"] = session
        _status, home, _headers = self.request("GET", "/")
        found = re.search(r'name="csrf_token" value="([^"]+)"', home)
        self.csrf = found.group(1) if found else ""


def _timed(
    client: Client, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> float:
    began = time.perf_counter()
    status, text, _headers = client.request(method, path, body, headers)
    seconds = time.perf_counter() - began
    if status not in (200, 303):
        raise BenchError(f"{method} {path} answered HTTP {status}: {text[:300]}")
    return seconds


def measure(args: argparse.Namespace) -> list[Figures]:
    home = OUT_DIR / f"http-{args.customers}"
    env = prepare(home, args.customers)
    orders = masked_orders(home, args.requests * 2 + WARM_UP * 2)
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "shelflife"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise BenchError("the server did not start") from None
                time.sleep(0.1)
        client = Client(port, env, args.auth)
        searches = orders[: args.requests + WARM_UP]
        retrievals = orders[args.requests + WARM_UP :]
        search_times = [
            _timed(client, "GET", args.search_path.format(number=quote(invoice)), None, {})
            for _order, invoice in searches
        ][WARM_UP:]
        retrieval_times = []
        for order, _invoice in retrievals:
            path = args.retrieve_path.format(order=quote(order))
            if args.auth == "token":
                body = json.dumps({"reason": "bench: return"}).encode()
                headers = {"Content-Type": "application/json"}
            else:
                body = urlencode({"reason": "bench: return", "csrf_token": client.csrf}).encode()
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
            retrieval_times.append(_timed(client, "POST", path, body, headers))
        retrieval_times = retrieval_times[WARM_UP:]
    finally:
        server.terminate()
        server.wait(timeout=30)
    return [
        Figures.of(args.search_path, search_times, TARGETS_MS["search"]),
        Figures.of(args.retrieve_path, retrieval_times, TARGETS_MS["retrieval"]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=positive_int, default=100_000)
    parser.add_argument("--requests", type=positive_int, default=500, help="per endpoint")
    parser.add_argument("--auth", choices=("token", "session"), default="token")
    parser.add_argument("--search-path", default="/api/v1/orders?number={number}")
    parser.add_argument("--retrieve-path", default="/api/v1/orders/{order}/retrieve")
    args = parser.parse_args(argv)
    try:
        figures = measure(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for f in figures:
        verdict = "within" if f.p99_ms < f.target_p99_ms else "OVER"
        print(
            f"{f.endpoint}: {f.requests} requests, p50 {f.p50_ms} ms, p99 {f.p99_ms} ms, "
            f"mean {f.mean_ms} ms, max {f.max_ms} ms ({verdict} the p99 target of "
            f"{f.target_p99_ms:.0f} ms)"
        )
    out = OUT_DIR / f"http-latency-{args.customers}.json"
    out.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "customers": args.customers,
                "auth": args.auth,
                "load_average": os.getloadavg(),
                "figures": [asdict(f) for f in figures],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
