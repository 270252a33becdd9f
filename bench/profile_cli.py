"""Run one `shelflife` command under cProfile, worker threads included.

``python -m cProfile`` sees only the main thread, but `shelflife run` seals, writes and reads
back archive copies on a thread pool; there the main thread just waits on a lock. This wrapper
profiles every thread and writes two files: ``<out>.prof`` (the main thread) and
``<out>-threads.prof`` (all other threads merged; their times add up across threads, so they
can exceed the wall time).

    .venv/bin/python bench/profile_cli.py --out /tmp/run -- run --as-of 2026-06-01T02:00:00+02:00
    .venv/bin/python bench/profile_cli.py --show /tmp/run.prof /tmp/run-threads.prof
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
from pathlib import Path


def profile_command(args: list[str], out: Path) -> int:
    """Run ``shelflife *args`` in this process and return its exit code."""
    from shelflife.entrypoints.cli import main as shelflife_main

    thread_profiles: list[cProfile.Profile] = []
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        thread_profiles.append(profile)  # list.append is atomic under the GIL
        profile.enable()
        try:
            original_run(self)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    sys.argv = ["shelflife", *args]
    code = 0
    main_profile = cProfile.Profile()
    main_profile.enable()
    try:
        shelflife_main()
    except SystemExit as exc:  # Typer ends every command with sys.exit
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        main_profile.disable()
        threading.Thread.run = original_run  # type: ignore[method-assign]
    out.parent.mkdir(parents=True, exist_ok=True)
    main_profile.dump_stats(f"{out}.prof")
    if thread_profiles:
        pstats.Stats(*thread_profiles).dump_stats(f"{out}-threads.prof")
    return code


def print_top(path: Path, limit: int = 15) -> None:
    """The functions with the most cumulative and the most own time in one profile file."""
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(r"shelflife|concurrent|sqlalchemy|psycopg", limit)
    stats.sort_stats("tottime").print_stats(limit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, help="writes OUT.prof and OUT-threads.prof")
    parser.add_argument("--show", type=Path, nargs="+", help="print the top of these profiles")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then shelflife arguments")
    args = parser.parse_args(argv)
    if args.show:
        for path in args.show:
            print(f"===== {path}")
            print_top(path)
        return 0
    if args.out is None:
        parser.error("--out is required to profile a command")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the shelflife command after --")
    return profile_command(command, args.out)


if __name__ == "__main__":
    sys.exit(main())
