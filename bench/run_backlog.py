"""Time `shelflife run` on the backlog a shop has when the feature is first enabled.

For each backend: a fresh home, `shelflife init`, `shelflife import` of N generated customers
(timed, reported, not the target), `shelflife feature enable` for every shop, then the timed
`shelflife run --as-of ... --json` (wall time and the child's peak RSS), a second run that must
do nothing, and `shelflife compliance` to show that only buyers with open orders remain unmasked.
Everything runs through the real CLI in subprocesses, as an operator would run it.

    .venv/bin/python bench/run_backlog.py --customers 10000 --backend both

Results go to bench/out/results-<N>.json (entries of other backends already there are kept).
Exit code 1 when a step fails or a check does not hold (wrong counts, rerun not a no-op, a buyer
overdue for another reason than an open order).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
from typing import Any

from rich.console import Console
from rich.table import Table

from generate import (
    DEFAULT_DAYS,
    DEFAULT_START,
    OUT_DIR,
    Generated,
    ensure_orders,
    make_spec,
    parse_instant,
    positive_int,
)
from shelflife.adapters.archive.segments import read_manifest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_AS_OF = "2026-06-01T02:00:00+02:00"  # a night three months after the last shipment
MASK_AFTER = timedelta(days=31)  # 30 calendar days plus a day of time-zone slack
BACKENDS = ("sqlite", "postgresql")
OPEN_ORDER = "open order"  # the compliance reason an open order gives (MaskBlocker.OPEN_ORDER)
RUN_COUNTS = ("archived", "masked", "archive_failed", "retried", "remasked")

console = Console(width=None if sys.stdout.isatty() else 140)  # a log keeps whole columns


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


@dataclass(frozen=True)
class CliRun:
    """One finished `shelflife` subprocess."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # wall time from spawn to exit, Python start-up included
    peak_rss_mb: float  # the child's own maximum resident set size

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError:
            raise BenchError(
                f"`shelflife {' '.join(self.args)}` printed no JSON: {self.stdout[:200]!r}"
            ) from None


@dataclass
class Result:
    backend: str
    customers: int
    orders: int
    import_seconds: float = 0.0
    run_seconds: float = 0.0
    archived: int = 0
    masked: int = 0
    archive_failed: int = 0
    per_second: float = 0.0
    peak_rss_mb: float = 0.0
    rerun_seconds: float = 0.0
    overdue_after: int = 0
    dry_run_seconds: float = 0.0  # `run --dry-run` just before the run, wall time
    dry_run_counts: dict[str, int] = field(default_factory=dict)
    # Context beyond the headline figures.
    run_reported_seconds: float = 0.0  # the run's own duration_seconds (no interpreter start-up)
    rerun_reported_seconds: float = 0.0
    import_peak_rss_mb: float = 0.0
    rerun_counts: dict[str, int] = field(default_factory=dict)
    archive_objects: int = 0  # segments: one per batch of a shop
    archive_records: int = 0  # buyers' records in them, from their manifests
    expected: dict[str, int] = field(default_factory=dict)
    load_average: list[float] = field(default_factory=list)  # 1-min load before, after the run
    profiled: bool = False  # the timed run ran under cProfile (slower; see profile_prefix)
    problems: list[str] = field(default_factory=list)
    as_of: str = ""
    measured_at: str = ""
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


class Shelflife:
    """Runs the real CLI of this virtual environment with a fixed environment."""

    def __init__(self, env: dict[str, str]) -> None:
        script = Path(sys.executable).parent / "shelflife"
        found = str(script) if script.is_file() else shutil.which("shelflife")
        if found is None:
            raise BenchError("no `shelflife` script next to this Python; run `make venv` first")
        self.script = found
        self.env = env

    def __call__(
        self, *args: str, ok: Sequence[int] = (0,), profile_to: Path | None = None
    ) -> CliRun:
        command = [self.script, *args]
        if profile_to is not None:
            profiler = str(Path(__file__).resolve().parent / "profile_cli.py")
            command = [sys.executable, profiler, "--out", str(profile_to), "--", *args]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            began = time.perf_counter()
            child = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=self.env
            )
            # wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the maximum over
            # every child so far (the import's peak would hide the run's).
            _pid, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - began
            child.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            result = CliRun(
                args=tuple(args),
                returncode=child.returncode,
                stdout=out.read().decode("utf-8", "replace"),
                stderr=err.read().decode("utf-8", "replace"),
                seconds=seconds,
                peak_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
            )
        if result.returncode not in ok:
            raise BenchError(
                f"`shelflife {' '.join(args)}` exited {result.returncode}: "
                f"{result.stderr.strip()[-500:]}"
            )
        return result


@contextmanager
def database(backend: str, customers: int) -> Iterator[dict[str, str]]:
    """Environment variables that point shelflife at a fresh database of ``backend``."""
    if backend == "sqlite":
        yield {}  # the default: shelflife.db in the home folder
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
        yield {"SHELFLIFE_DATABASE_URL": cluster.create_database(f"shelflife_bench_{customers}")}
    finally:
        cluster.stop()


def profile_prefix(backend: str, customers: int) -> Path:
    """Where a profiled run's <prefix>.prof and <prefix>-threads.prof go (outside the home)."""
    return OUT_DIR / f"profile-{backend}-{customers}"


def child_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHELFLIFE_", "PG"))}
    env.update(extra, SHELFLIFE_HOME=str(home))
    return env


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "system": platform.platform(),
        "python": platform.python_version(),
    }


def bench_backend(backend: str, data: Generated, as_of: str, keep: bool, profile: bool) -> Result:
    n = data.spec.customers
    c = data.contents
    result = Result(
        backend=backend,
        customers=n,
        orders=c.orders,
        as_of=as_of,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine(),
        expected={
            "archived": c.amazon_buyers_closed,
            "masked": c.amazon_buyers_all_closed,
            "overdue_after": c.amazon_buyers_open_and_closed,
        },
    )
    home = OUT_DIR / f"{backend}-{n}"
    shutil.rmtree(home, ignore_errors=True)
    try:
        with database(backend, n) as extra:
            cli = Shelflife(child_env(home, extra))
            console.print(f"[bold]{backend}[/]: init, import {c.orders} orders", highlight=False)
            cli("init")
            imported = cli("import", str(data.path), "--json")
            report = imported.json()
            result.import_seconds = round(imported.seconds, 2)
            result.import_peak_rss_mb = round(imported.peak_rss_mb, 1)
            if report["created"] != c.orders or report["refused"] != 0:
                result.problems.append(
                    f"import created {report['created']} of {c.orders}, refused {report['refused']}"
                )
            shops = [s["name"] for s in cli("shop", "list", "--json").json()]
            for shop in shops:
                cli("feature", "enable", "--shop", shop)

            preview = cli("run", "--dry-run", "--as-of", as_of, "--json")
            result.dry_run_seconds = round(preview.seconds, 2)
            result.dry_run_counts = {k: preview.json()[k] for k in RUN_COUNTS}

            console.print(f"[bold]{backend}[/]: run as of {as_of}", highlight=False)
            profile_to = profile_prefix(backend, n) if profile else None
            load_before = os.getloadavg()[0]
            run = cli("run", "--as-of", as_of, "--json", profile_to=profile_to)
            result.load_average = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            counts = run.json()
            result.profiled = profile
            result.run_seconds = round(run.seconds, 2)
            result.run_reported_seconds = counts["duration_seconds"]
            result.peak_rss_mb = round(run.peak_rss_mb, 1)
            result.archived = counts["archived"]
            result.masked = counts["masked"]
            result.archive_failed = counts["archive_failed"]
            result.per_second = round(result.archived / run.seconds, 1)
            segments = [p for p in (home / "archive").rglob("*.sls") if p.is_file()]
            result.archive_objects = len(segments)
            result.archive_records = sum(len(read_manifest(p.read_bytes())) for p in segments)

            rerun = cli("run", "--as-of", as_of, "--json")
            rerun_counts = rerun.json()
            result.rerun_seconds = round(rerun.seconds, 2)
            result.rerun_reported_seconds = rerun_counts["duration_seconds"]
            result.rerun_counts = {k: rerun_counts[k] for k in RUN_COUNTS}

            compliance = cli("compliance", "--as-of", as_of, "--json", ok=(0, 1)).json()
            result.overdue_after = len(compliance["violations"]) + len(compliance["holds"])
            other = compliance["violations"] + [
                r
                for r in compliance["holds"]
                if OPEN_ORDER not in (h["reason"] for h in r["held_by"])
            ]
            if other:
                reasons = sorted({"; ".join(r["reasons"]) for r in other})
                result.problems.append(
                    f"{len(other)} overdue buyer(s) without an open order: {reasons[:3]}"
                )
    except BenchError as exc:
        result.problems.append(str(exc))
        return result
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    check(result)
    return result


def check(result: Result) -> None:
    """Compare what the run did with what the generated file holds."""
    actual = {
        "archived": result.archived,
        "masked": result.masked,
        "overdue_after": result.overdue_after,
    }
    for key, want in result.expected.items():
        if actual[key] != want:
            result.problems.append(f"{key} is {actual[key]}, the data says {want}")
    if result.archive_failed:
        result.problems.append(f"{result.archive_failed} archive(s) failed")
    if result.archive_records != result.archived:
        result.problems.append(
            f"{result.archive_records} archive records for {result.archived} archived buyers"
        )
    if result.archived and not 0 < result.archive_objects < result.archived:
        result.problems.append(
            f"{result.archive_objects} segments for {result.archived} archived buyers"
        )
    if any(result.rerun_counts.values()):
        result.problems.append(f"the rerun was not a no-op: {result.rerun_counts}")
    done = {"archived": result.archived, "masked": result.masked, "archive_failed": 0}
    if {k: result.dry_run_counts.get(k) for k in done} != done:
        result.problems.append(f"the dry run foretold {result.dry_run_counts}, the run did {done}")


def print_table(results: Sequence[Result]) -> None:
    table = Table(title=f"shelflife run on a backlog of {results[0].customers} customers")
    columns = (
        "backend",
        "orders",
        "import s",
        "run s",
        "archived",
        "masked",
        "failed",
        "archived/s",
        "peak RSS MB",
        "rerun s",
        "dry run s",
        "overdue after",
        "checks",
    )
    for name in columns:
        table.add_column(name, justify="left" if name in ("backend", "checks") else "right")
    for r in results:
        table.add_row(
            r.backend,
            str(r.orders),
            f"{r.import_seconds:.1f}",
            f"{r.run_seconds:.1f}",
            str(r.archived),
            str(r.masked),
            str(r.archive_failed),
            f"{r.per_second:.0f}",
            f"{r.peak_rss_mb:.0f}",
            f"{r.rerun_seconds:.1f}",
            f"{r.dry_run_seconds:.1f}",
            str(r.overdue_after),
            "ok" if r.ok else "[red]FAILED[/]",
        )
    console.print(table)
    for r in results:
        for problem in r.problems:
            console.print(f"[red]{r.backend}:[/] {problem}", highlight=False, soft_wrap=True)


def save(results: Sequence[Result], customers: int, profiled: bool) -> Path:
    """Write results-<N>.json, keeping entries of backends not measured this time.

    Profiled runs are slower and go to results-<N>-profiled.json instead.
    """
    path = OUT_DIR / f"results-{customers}{'-profiled' if profiled else ''}.json"
    entries: list[dict[str, Any]] = []
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            measured = {r.backend for r in results}
            entries = [e for e in old if isinstance(e, dict) and e.get("backend") not in measured]
        except ValueError:
            entries = []
    for r in results:
        entries.append(dict(vars(r), ok=r.ok))
    entries.sort(key=lambda e: BACKENDS.index(e["backend"]) if e["backend"] in BACKENDS else 9)
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=positive_int, required=True, help="buyers (N)")
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    parser.add_argument(
        "--as-of", default=DEFAULT_AS_OF, help=f"instant of the run (default {DEFAULT_AS_OF})"
    )
    parser.add_argument("--keep", action="store_true", help="keep bench/out/<backend>-N/")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the timed `shelflife run` (slower) into bench/out/profile-<backend>-N*.prof",
    )
    args = parser.parse_args(argv)
    as_of = parse_instant(args.as_of)
    spec = make_spec(args.customers, DEFAULT_START, DEFAULT_DAYS, seed=1)
    export_at = spec.start + timedelta(days=spec.days)
    if as_of < export_at + MASK_AFTER:
        parser.error(f"--as-of must be on or after {(export_at + MASK_AFTER).isoformat()}")

    data = ensure_orders(spec)
    how = "reused" if data.reused else f"generated in {data.seconds:.1f} s"
    console.print(f"{data.path} ({data.contents.orders} orders, {how})", highlight=False)
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    results = [bench_backend(b, data, as_of.isoformat(), args.keep, args.profile) for b in backends]
    print_table(results)
    if args.profile:
        files = " ".join(
            f"{profile_prefix(r.backend, args.customers)}{part}.prof"
            for r in results
            for part in ("", "-threads")
        )
        console.print(f"profiles: .venv/bin/python bench/profile_cli.py --show {files}")
    console.print(f"results: {save(results, args.customers, args.profile)}", highlight=False)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
