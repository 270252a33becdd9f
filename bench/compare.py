"""`make bench`: shelflife's nightly run against the hardware floor (`bench/floor.py`).

For each backend, N customers (and N/10 for the growth case) from `bench/generate.py` are
imported once through the CLI (`init`, `import`, `feature enable` for every shop); every
measurement then runs on its own copy of that database (SQLite: the home folder copied;
PostgreSQL: `CREATE DATABASE … TEMPLATE`), `shelflife run` on one copy and `floor.py` on another,
one after the other in the same invocation, each as its own process (wall time and the child's
own peak RSS from `os.wait4`). The two must archive and mask the same number of buyers.

Cases:
1. backlog: every buyer due (as of 2026-06-01);
2. steady night: the night on which about 1/30 of the N customers are due;
3. growth: N/10 customers all due vs. N customers on the night with as many due;
4. peak RSS of each process (columns of every row);
5. PostgreSQL only: `shelflife run --workers 2` (one run, two processes) and two
   `shelflife run` processes side by side on the backlog, each vs. one run.

With `--scale-from N0` (`SCALE=1 make bench`: N0 = N/10), only N0 customers are imported; the
N database is a copy of that imported one made N/N0 times as large inside the database by
`bench/scale.py` (minutes instead of the hours an import of 1,000,000 customers takes), and
every row, the table and the JSON say that it was scaled. The imported N0 database is the
growth case's N/10 one when N0 = N/10. Copies of a home hard-link its `documents` folder (the
PDFs; the store writes by temporary file and rename and deletes by unlink, never in place).

Ratios use the work's own time (the run's `duration_seconds`, the floor's `seconds`), without
interpreter start-up; wall times are in the table and the JSON too. Figures go to
`bench/results/compare-N.json` with the machine and its load.

    .venv/bin/python bench/compare.py --customers 20000 --backend both
    .venv/bin/python bench/compare.py --customers 1000000 --scale-from 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from generate import (
    DEFAULT_DAYS,
    DEFAULT_START,
    OUT_DIR,
    Generated,
    ensure_orders,
    make_spec,
    positive_int,
)
from run_backlog import REPO_ROOT, BenchError, Shelflife, child_env, machine

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
BACKLOG_AS_OF = "2026-06-01T02:00:00+02:00"
BACKENDS = ("sqlite", "postgresql")

console = Console(width=None if sys.stdout.isatty() else 200)


@dataclass(frozen=True)
class Proc:
    seconds: float  # wall, start-up included
    peak_rss_mb: float
    out: dict[str, Any]


@dataclass
class Row:
    case: str
    backend: str
    customers: int
    as_of: str
    archived: int = 0
    masked: int = 0
    shelflife_seconds: float = 0.0  # the run's own duration_seconds
    floor_seconds: float = 0.0  # the floor's own seconds
    shelflife_wall: float = 0.0
    floor_wall: float = 0.0
    shelflife_rss_mb: float = 0.0
    floor_rss_mb: float = 0.0
    floor_archived: int = 0
    floor_masked: int = 0
    load_average: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    scaled_from: int | None = None  # the database was this many imported customers, scaled

    @property
    def ratio(self) -> float:
        return self.shelflife_seconds / self.floor_seconds if self.floor_seconds else 0.0


@dataclass(frozen=True)
class Child:
    process: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]


def spawn(command: Sequence[str], env: dict[str, str]) -> Child:
    # Closed by `reap`: the files outlive this function, so no `with` here.
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(
        list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env
    )
    return Child(process, out, err)


def reap(child: Child, began: float, what: str) -> Proc:
    """Wait for one child; its own rusage (not the maximum over all children so far)."""
    _pid, status, usage = os.wait4(child.process.pid, 0)
    seconds = time.perf_counter() - began
    code = os.waitstatus_to_exitcode(status)
    child.process.returncode = code
    child.out.seek(0)
    child.err.seek(0)
    out, err = child.out.read().decode(), child.err.read().decode()
    child.out.close()
    child.err.close()
    if code != 0:
        raise BenchError(f"{what} exited {code}: {err.strip()[-500:]}")
    try:
        document = json.loads(out)
    except ValueError:
        raise BenchError(f"{what} printed no JSON: {out[:200]!r}") from None
    return Proc(round(seconds, 2), round(usage.ru_maxrss / 1024, 1), document)


class Copies:
    """A base database imported once, and fresh copies of it for each measurement."""

    def __init__(self, backend: str, name: str, cluster: Any) -> None:
        self.backend = backend
        self.name = name
        self.cluster = cluster
        self.home = OUT_DIR / f"compare-{name}"
        self.count = 0
        self.due_counts: dict[int, int] = {}
        """Days after the first orders turned 29 days old -> buyers a dry run would archive."""
        self.extra: dict[str, str] = {}
        shutil.rmtree(self.home, ignore_errors=True)
        if cluster is not None:
            self.extra = {"SHELFLIFE_DATABASE_URL": cluster.create_database(name)}

    def env(self) -> dict[str, str]:
        return child_env(self.home, self.extra)

    def load(self, data: Generated) -> None:
        cli = Shelflife(self.env())
        cli("init")
        report = cli("import", str(data.path), "--json").json()
        if report["created"] != data.contents.orders or report["refused"]:
            raise BenchError(f"import created {report['created']} of {data.contents.orders}")
        for shop in cli("shop", "list", "--json").json():
            cli("feature", "enable", "--shop", shop["name"])

    def scale(self, base: Copies, factor: int) -> float:
        """This database as a copy of `base`'s (imported), made `factor` times as large by
        bench/scale.py; its time in seconds."""
        began = time.perf_counter()
        copy_home(base.home, self.home)
        if self.cluster is not None:
            self.cluster.drop_database(self.name)
            self.cluster.create_database(self.name, template=base.name)
        command = [sys.executable, str(BENCH_DIR / "scale.py"), "--home", str(self.home)]
        done = subprocess.run(
            [*command, "--factor", str(factor)], env=self.env(), capture_output=True, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"scale.py exited {done.returncode}: {done.stderr.decode()[-500:]}")
        return time.perf_counter() - began

    def copy(self) -> tuple[Path, str, dict[str, str]]:
        """A fresh home, its database URL and the environment pointing at it."""
        self.count += 1
        home = OUT_DIR / f"compare-{self.name}-{self.count}"
        shutil.rmtree(home, ignore_errors=True)
        copy_home(self.home, home)
        warm_documents(home / "documents")
        if self.cluster is None:
            url = f"sqlite:///{home / 'shelflife.db'}"
            return home, url, child_env(home, {})
        url = self.cluster.create_database(f"{self.name}_{self.count}", template=self.name)
        return home, url, child_env(home, {"SHELFLIFE_DATABASE_URL": url})

    def drop(self, home: Path) -> None:
        shutil.rmtree(home, ignore_errors=True)
        if self.cluster is not None:
            self.cluster.drop_database(f"{self.name}_{home.name.rsplit('-', 1)[1]}")

    def remove(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


def copy_home(source: Path, target: Path) -> None:
    """A copy of a home folder whose `documents` (one PDF per invoice: a million files at the
    largest N) are hard links: the document store never changes a file in place."""
    shutil.rmtree(target, ignore_errors=True)
    top = str(source)
    shutil.copytree(
        source, target, ignore=lambda folder, _names: ["documents"] if folder == top else []
    )
    if (source / "documents").is_dir():
        shutil.copytree(source / "documents", target / "documents", copy_function=os.link)


def warm_documents(folder: Path) -> None:
    """Read every PDF of a copy once before a program runs on it. The copies' PDFs are hard
    links to the same files, so whichever program ran first read them from the disk and the
    second from the page cache: shelflife always ran first, and on the 100,000-customer
    backlog the floor took 31.1 s with cold caches against 23.0 s warm. Both now start warm."""
    for root, _folders, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                handle.read()


def shelflife_command(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "shelflife"
    return [str(script), *args]


def floor_command(home: Path, url: str, as_of: str) -> list[str]:
    return [
        sys.executable,
        str(BENCH_DIR / "floor.py"),
        "--database-url",
        url,
        "--archive",
        str(home / "floor-archive"),
        "--kek-file",
        str(home / "floor.kek"),
        "--documents",
        str(home / "documents"),
        "--as-of",
        as_of,
    ]


def run_shelflife(env: dict[str, str], as_of: str, *options: str) -> Proc:
    """One `shelflife run`; its peak RSS is the run process's own (with `--workers`, its
    helpers' are not included: each is a process of about the same size)."""
    began = time.perf_counter()
    command = shelflife_command("run", "--as-of", as_of, "--json", *options)
    return reap(spawn(command, env), began, "shelflife run")


def measure(
    case: str, copies: Copies, customers: int, as_of: str, scaled_from: int | None = None
) -> Row:
    """shelflife and the floor, each on its own fresh copy, one after the other."""
    row = Row(case, copies.backend, customers, as_of, scaled_from=scaled_from)
    load = os.getloadavg()[0]
    home, _url, env = copies.copy()
    try:
        run = run_shelflife(env, as_of)
    finally:
        copies.drop(home)
    home, url, env = copies.copy()
    try:
        began = time.perf_counter()
        floor = reap(spawn(floor_command(home, url, as_of), env), began, "floor.py")
    finally:
        copies.drop(home)
    row.load_average = [round(load, 2), round(os.getloadavg()[0], 2)]
    row.archived, row.masked = run.out["archived"], run.out["masked"]
    row.shelflife_seconds, row.shelflife_wall = run.out["duration_seconds"], run.seconds
    row.shelflife_rss_mb = run.peak_rss_mb
    row.floor_archived, row.floor_masked = floor.out["archived"], floor.out["masked"]
    row.floor_seconds, row.floor_wall = floor.out["seconds"], floor.seconds
    row.floor_rss_mb = floor.peak_rss_mb
    if run.out["archive_failed"]:
        row.problems.append(f"{run.out['archive_failed']} archive(s) failed")
    if (row.archived, row.masked) != (row.floor_archived, row.floor_masked):
        row.problems.append(
            f"shelflife archived/masked {row.archived}/{row.masked}, "
            f"the floor {row.floor_archived}/{row.floor_masked}"
        )
    return row


def with_workers(copies: Copies, customers: int, as_of: str, single: Row) -> Row:
    """`shelflife run --workers 2` on the backlog; the floor columns hold the single run."""
    row = Row("--workers 2 vs 1", copies.backend, customers, as_of, scaled_from=single.scaled_from)
    load = os.getloadavg()[0]
    home, _url, env = copies.copy()
    try:
        run = run_shelflife(env, as_of, "--workers", "2")
    finally:
        copies.drop(home)
    row.load_average = [round(load, 2), round(os.getloadavg()[0], 2)]
    row.archived, row.masked = run.out["archived"], run.out["masked"]
    row.shelflife_seconds, row.shelflife_wall = run.out["duration_seconds"], run.seconds
    row.shelflife_rss_mb = run.peak_rss_mb
    row.floor_seconds, row.floor_wall = single.shelflife_seconds, single.shelflife_wall
    row.floor_archived, row.floor_masked = single.archived, single.masked
    row.floor_rss_mb = single.shelflife_rss_mb
    if (row.archived, row.masked) != (single.archived, single.masked):
        row.problems.append(
            f"--workers 2 archived/masked {row.archived}/{row.masked}, "
            f"one {single.archived}/{single.masked}"
        )
    return row


def side_by_side(copies: Copies, customers: int, as_of: str, single: Row) -> Row:
    """Two `shelflife run` processes on one database at once; the floor column holds one run."""
    row = Row("2 runs vs 1", copies.backend, customers, as_of, scaled_from=single.scaled_from)
    load = os.getloadavg()[0]
    home, _url, env = copies.copy()
    try:
        began = time.perf_counter()
        children = [spawn(shelflife_command("run", "--as-of", as_of, "--json"), env) for _ in "ab"]
        procs = [reap(c, began, "shelflife run") for c in children]
    finally:
        copies.drop(home)
    row.load_average = [round(load, 2), round(os.getloadavg()[0], 2)]
    row.archived = sum(p.out["archived"] for p in procs)
    row.masked = sum(p.out["masked"] for p in procs)
    row.shelflife_wall = max(p.seconds for p in procs)
    row.shelflife_seconds = max(p.out["duration_seconds"] for p in procs)
    row.shelflife_rss_mb = max(p.peak_rss_mb for p in procs)
    # Compared with one run of the same backlog (the backlog row's shelflife figures).
    row.floor_seconds, row.floor_wall = single.shelflife_seconds, single.shelflife_wall
    row.floor_archived, row.floor_masked = single.archived, single.masked
    row.floor_rss_mb = single.shelflife_rss_mb
    if (row.archived, row.masked) != (single.archived, single.masked):
        row.problems.append(
            f"two runs archived/masked {row.archived}/{row.masked}, "
            f"one {single.archived}/{single.masked}"
        )
    return row


def night(days_after_first: int) -> str:
    """A run at 02:00 Berlin time `days_after_first` days after the first orders turn 29 days
    old: the buyers whose orders closed in the first days are due, the rest not yet."""
    day = DEFAULT_START + timedelta(days=29 + days_after_first)
    return f"{day.date().isoformat()}T02:00:00+01:00"


def calibrate(copies: Copies, target: int) -> tuple[str, int]:
    """The night (by `run --dry-run`, a binary search over the days: the count only grows)
    on which the number of buyers due to be archived is closest to `target`."""
    cli = Shelflife(copies.env())
    counts = copies.due_counts  # the second search reuses the first one's dry runs

    def due(days: int) -> int:
        if days not in counts:
            out = cli("run", "--dry-run", "--as-of", night(days), "--json").json()
            counts[days] = out["archived"]
        return counts[days]

    low, high = 0, DEFAULT_DAYS + 2
    while low < high:
        middle = (low + high) // 2
        if due(middle) < target:
            low = middle + 1
        else:
            high = middle
    candidates = [d for d in (low - 1, low) if 0 <= d <= DEFAULT_DAYS + 2]
    best = min(candidates, key=lambda d: abs(due(d) - target))
    return night(best), due(best)


@contextmanager
def cluster_for(backend: str) -> Iterator[Any]:
    if backend == "sqlite":
        yield None
        return
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.support.pg_cluster import PostgresCluster

    cluster = PostgresCluster()
    try:
        cluster.start()
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass(frozen=True)
class Plan:
    """What to import: the N customers, or N0 of them scaled x N/N0 (`scaled`), and N/10."""

    customers: int
    big: Generated  # imported as the N database, or scaled to it when `scaled`
    small: Generated  # the growth case's N/10
    scaled: bool = False

    @property
    def factor(self) -> int:
        return self.customers // self.big.spec.customers


def bench_backend(backend: str, plan: Plan, timings: dict[str, dict[str, float]]) -> list[Row]:
    n, big, small = plan.customers, plan.big, plan.small
    scaled_from = big.spec.customers if plan.scaled else None
    rows: list[Row] = []
    with cluster_for(backend) as cluster:
        base = Copies(backend, f"bench_{backend}_{n}", cluster)
        tenth = Copies(backend, f"bench_{backend}_{small.spec.customers}", cluster)
        imported = (
            Copies(backend, f"bench_{backend}_{big.spec.customers}_base", cluster)
            if plan.scaled and big is not small
            else tenth
        )
        try:
            began = time.perf_counter()
            console.print(f"[bold]{backend}[/]: importing {big.spec.customers}", highlight=False)
            if plan.scaled:
                imported.load(big)  # the time of this import only, not of N/10's below
                timings[backend] = {"import_seconds": round(time.perf_counter() - began, 1)}
                if imported is not tenth:
                    tenth.load(small)
                console.print(f"[bold]{backend}[/]: scaling x{plan.factor} to {n}", highlight=False)
                seconds = base.scale(imported, plan.factor)
                timings[backend]["scale_seconds"] = round(seconds, 1)
                if imported is not tenth:
                    imported.remove()
            else:
                base.load(big)
                tenth.load(small)
                timings[backend] = {"import_seconds": round(time.perf_counter() - began, 1)}
            console.print(f"[bold]{backend}[/]: backlog")
            backlog = measure("backlog", base, n, BACKLOG_AS_OF, scaled_from)
            rows.append(backlog)
            steady_as_of, _ = calibrate(base, round(n / 30))
            console.print(f"[bold]{backend}[/]: steady night {steady_as_of}")
            rows.append(measure("steady night", base, n, steady_as_of, scaled_from))
            console.print(f"[bold]{backend}[/]: growth")
            small_row = measure("growth N/10", tenth, small.spec.customers, BACKLOG_AS_OF)
            rows.append(small_row)
            growth_as_of, _ = calibrate(base, small_row.archived)
            rows.append(measure("growth N", base, n, growth_as_of, scaled_from))
            if backend == "postgresql":
                console.print(f"[bold]{backend}[/]: run --workers 2")
                rows.append(with_workers(base, n, BACKLOG_AS_OF, backlog))
                console.print(f"[bold]{backend}[/]: two processes side by side")
                rows.append(side_by_side(base, n, BACKLOG_AS_OF, backlog))
        finally:
            base.remove()
            tenth.remove()
            imported.remove()
    return rows


def per_buyer_ms(seconds: float, buyers: int) -> float:
    return 1000 * seconds / buyers if buyers else 0.0


def growth_factors(rows: Sequence[Row]) -> dict[str, dict[str, float]]:
    """Time per due buyer at N divided by that at N/10, per backend, for both programs."""
    out: dict[str, dict[str, float]] = {}
    for backend in BACKENDS:
        small = [r for r in rows if r.backend == backend and r.case == "growth N/10"]
        big = [r for r in rows if r.backend == backend and r.case == "growth N"]
        if not (small and big):
            continue
        s, b = small[0], big[0]
        out[backend] = {
            "shelflife": round(
                per_buyer_ms(b.shelflife_seconds, b.archived)
                / per_buyer_ms(s.shelflife_seconds, s.archived),
                2,
            ),
            "floor": round(
                per_buyer_ms(b.floor_seconds, b.floor_archived)
                / per_buyer_ms(s.floor_seconds, s.floor_archived),
                2,
            ),
        }
    return out


def scaled_note(plan: Plan) -> str:
    if not plan.scaled:
        return ""
    return (
        f" (the N database: {plan.big.spec.customers} customers imported, "
        f"scaled x{plan.factor} by bench/scale.py)"
    )


def print_table(rows: Sequence[Row], plan: Plan) -> None:
    table = Table(
        title=f"shelflife run vs. the floor (bench/floor.py), N = {plan.customers}"
        + scaled_note(plan)
    )
    for name in (
        "case",
        "backend",
        "customers",
        "archived / masked",
        "shelflife s",
        "floor s",
        "ratio",
        "ms/buyer shelflife",
        "ms/buyer floor",
        "wall s shelflife / floor",
        "peak RSS MB shelflife / floor",
        "checks",
    ):
        table.add_column(name, justify="left" if name in ("case", "backend", "checks") else "right")
    for r in rows:
        two = r.case in ("2 runs vs 1", "--workers 2 vs 1")
        table.add_row(
            r.case + (" (floor col.: 1 run)" if two else ""),
            r.backend,
            str(r.customers) + (f" (x{r.customers // r.scaled_from})" if r.scaled_from else ""),
            f"{r.archived} / {r.masked}",
            f"{r.shelflife_seconds:.1f}",
            f"{r.floor_seconds:.1f}",
            f"{r.ratio:.2f}",
            f"{per_buyer_ms(r.shelflife_seconds, r.archived):.2f}",
            f"{per_buyer_ms(r.floor_seconds, r.floor_archived):.2f}",
            f"{r.shelflife_wall:.1f} / {r.floor_wall:.1f}",
            f"{r.shelflife_rss_mb:.0f} / {r.floor_rss_mb:.0f}",
            "ok" if not r.problems else "[red]FAILED[/]",
        )
    console.print(table)
    for backend, factors in growth_factors(rows).items():
        console.print(
            f"growth ({backend}): time per due buyer at N / at N/10 = "
            f"{factors['shelflife']:.2f} (shelflife), {factors['floor']:.2f} (floor)",
            highlight=False,
        )
    for r in rows:
        for problem in r.problems:
            console.print(f"[red]{r.backend} {r.case}:[/] {problem}", highlight=False)


def save(
    rows: Sequence[Row], plan: Plan, seconds: float, timings: dict[str, dict[str, float]]
) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    scaled = f"-scaled-from-{plan.big.spec.customers}" if plan.scaled else ""
    path = RESULTS_DIR / f"compare-{plan.customers}{scaled}.json"
    document = {
        "customers": plan.customers,
        "scaled_from": plan.big.spec.customers if plan.scaled else None,
        "scale_factor": plan.factor if plan.scaled else None,
        "note": scaled_note(plan).strip(" ()") or None,
        "preparation": timings,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "total_seconds": round(seconds, 1),
        "machine": machine(),
        "batch_size_default": 1000,
        "growth_factors": growth_factors(rows),
        "rows": [dict(vars(r), ratio=round(r.ratio, 2)) for r in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=positive_int, required=True, help="buyers (N)")
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="sqlite")
    parser.add_argument(
        "--scale-from",
        type=positive_int,
        metavar="N0",
        help="import only N0 customers and scale that database to N inside the database "
        "(bench/scale.py; N a multiple of N0); the results say so",
    )
    args = parser.parse_args(argv)
    if args.customers < 300:
        parser.error("--customers must be at least 300 (N/10 needs some buyers due)")
    if args.scale_from is not None and (
        args.customers % args.scale_from or args.scale_from == args.customers
    ):
        parser.error("--customers must be a multiple of --scale-from (and larger)")
    began = time.perf_counter()
    tenth = args.customers // 10
    small = ensure_orders(make_spec(tenth, DEFAULT_START, DEFAULT_DAYS, seed=1))
    if args.scale_from is None:
        big = ensure_orders(make_spec(args.customers, DEFAULT_START, DEFAULT_DAYS, seed=1))
    elif args.scale_from == tenth:
        big = small
    else:
        big = ensure_orders(make_spec(args.scale_from, DEFAULT_START, DEFAULT_DAYS, seed=1))
    plan = Plan(args.customers, big, small, scaled=args.scale_from is not None)
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    rows: list[Row] = []
    timings: dict[str, dict[str, float]] = {}
    failed = False
    for backend in backends:
        try:
            rows.extend(bench_backend(backend, plan, timings))
        except BenchError as exc:
            console.print(f"[red]{backend}:[/] {exc}", highlight=False)
            failed = True
        if rows:  # after each backend, so that a stopped run keeps what it measured
            save(rows, plan, time.perf_counter() - began, timings)
    if rows:
        print_table(rows, plan)
        for backend, took in timings.items():
            console.print(
                f"{backend}: imported {big.spec.customers} in {took['import_seconds']:.0f} s"
                + (
                    f", scaled x{plan.factor} in {took['scale_seconds']:.0f} s"
                    if plan.scaled and "scale_seconds" in took
                    else ""
                ),
                highlight=False,
            )
        path = save(rows, plan, time.perf_counter() - began, timings)
        console.print(f"results: {path}", highlight=False)
    return 1 if failed or any(r.problems for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
