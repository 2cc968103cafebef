"""``gangflash journal``: what happened to every board, from the batch journal.

``gangflash journal [PATH]`` prints one line per attempt (newest batch last) and a count per
result; ``--export csv|jsonl`` writes every field instead, to ``--output FILE`` or stdout, for a
quality system or a script. ``PATH`` is a journal file or a batch config (its ``[batch] journal``
is used); without it, the single ``*.journal.db`` in the current folder.

Opening a journal nobody else has open also finishes what a crash left behind (attempts still
``running`` become ``not_finished``, their serial numbers burnt), so the table never shows a board
as in progress when nothing is running.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gangflash.cli import subcommand
from gangflash.orchestrator.config import ConfigErrors, format_errors, load_config
from gangflash.orchestrator.journal import RESULTS, AttemptRecord, Journal, JournalError

CAUSE_WIDTH = 60


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", metavar="PATH",
                        help="journal file, or a batch config whose journal to read "
                             "(default: the one *.journal.db in the current folder)")
    parser.add_argument("--export", choices=("csv", "jsonl"), help="write every field in this format")
    parser.add_argument("--output", metavar="FILE", help="export to FILE instead of stdout")
    parser.add_argument("--batch", type=int, metavar="ID", help="only this batch")


def _journal_path(text: str | None) -> Path:
    """The journal file named by the argument; ValueError with what to do otherwise."""
    if text is None:
        found = sorted(Path.cwd().glob("*.journal.db"))
        if len(found) != 1:
            what = "no *.journal.db" if not found else f"{len(found)} journals ({', '.join(p.name for p in found)})"
            raise ValueError(f"{what} in {Path.cwd()}; name one: gangflash journal PATH")
        return found[0]
    path = Path(text)
    if path.suffix == ".toml":
        return load_config(path).journal
    return path


def format_attempt_table(records: list[AttemptRecord]) -> str:
    """One line per attempt under a header; long causes are cut to keep one line each."""
    header = ("ID", "BATCH", "SLOT", "PROBE", "SERIAL", "UID", "RESULT", "TIME", "STARTED (UTC)", "CAUSE")
    lines = [header]
    for record in records:
        cause = record.cause or ""
        if len(cause) > CAUSE_WIDTH:
            cause = cause[:CAUSE_WIDTH - 3] + "..."
        lines.append((
            str(record.id), str(record.batch_id), record.slot, record.probe_serial or "-",
            record.serial_number or "-", record.chip_uid or "-", record.result,
            f"{record.duration_s:.1f} s" if record.duration_s is not None else "-",
            record.started[:19].replace("T", " "), cause))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1]
        for line in lines)


def format_summary(records: list[AttemptRecord]) -> str:
    counts = {result: 0 for result in RESULTS}
    for record in records:
        counts[record.result] += 1
    parts = [f"{count} {result.replace('_', ' ')}" for result, count in counts.items() if count]
    return f"{len(records)} attempt{'s' if len(records) != 1 else ''}" + (f": {', '.join(parts)}" if parts else "")


@subcommand("journal", "show or export the batch journal (every attempt, result and cause)", _configure)
def cmd_journal(args: argparse.Namespace) -> int:
    """Print the attempts table (exit 0), or export; exit 2 when the journal cannot be found or read."""
    try:
        path = _journal_path(args.path)
    except ConfigErrors as errors:
        print(format_errors(errors), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        with Journal.open(path, create=False) as journal:
            if args.export:
                target = args.output or sys.stdout
                writer = journal.to_csv if args.export == "csv" else journal.to_jsonl
                count = writer(target, batch_id=args.batch)
                if args.output:
                    print(f"{count} attempt(s) written to {args.output}", file=sys.stderr)
                return 0
            records = journal.attempts(args.batch)
    except JournalError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not records:
        print("no attempts in this journal" + (f" for batch {args.batch}" if args.batch is not None else ""))
        return 0
    print(format_attempt_table(records))
    print(format_summary(records))
    return 0
