#!/usr/bin/env python3
"""Why a test run failed, in a few lines: for the end of a CI log.

Usage: .ci/failures.py [--limit N] LOG   (prints the excerpt of LOG)

CI's excerpt of a failed run is the last ~170 lines of its log, and a
failed test's panic is printed where the failing binary ended, often far
above the end. This picks, from the output of `cargo test` or of test
binaries (libtest's format), at most N lines (default 40) that say what
failed, in the order they came:

- `test NAME ... FAILED` (which tests failed);
- each failing test's `panicked at` line and the message after it (up to
  a `note:` line, the next test's section or a few lines), from that
  test's `---- NAME stdout ----` section (any panic when no section
  names a failed test: a crash of `--nocapture` output, another thread);
- `error...` lines (cargo's "test failed, to rerun pass ...", a compile
  error's first line) and `test result: FAILED`.

When none of those is found (a binary killed by a signal says nothing),
the log's last lines. .ci/par-test prints one per failed job; .ci/run
prints one for a failed `cargo test` stage and the Wine stage.
"""

import re
import sys

# A line longer than this is cut (an event list's Debug can be kilobytes).
WIDTH = 400
# The message lines kept after a `panicked at` line.
PANIC_LINES = 10

FAILED_TEST = re.compile(r"^test (.+) \.\.\. FAILED\s*$")
SECTION = re.compile(r"^---- (.+) (?:stdout|stderr) ----\s*$")
PANIC = re.compile(r"panicked at ")


def _cut(line):
    return line if len(line) <= WIDTH else line[:WIDTH] + " [...]"


def excerpt(text, limit=40):
    """The lines of `text` (a test run's output) that say why it failed,
    at most `limit` of them."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = text.splitlines()
    failed = set()
    for line in lines:
        m = FAILED_TEST.match(line)
        if m:
            failed.add(m.group(1))
    # Each line's section: the test whose captured output it is, if any.
    section = [None] * len(lines)
    current = None
    for i, line in enumerate(lines):
        m = SECTION.match(line)
        if m:
            current = m.group(1)
        elif line.startswith(("failures:", "successes:", "test result:", "running ")):
            current = None
        section[i] = current
    any_section = any(s in failed for s in section if s is not None)

    keep = set()
    for i, line in enumerate(lines):
        if FAILED_TEST.match(line) or line.startswith("test result: FAILED"):
            keep.add(i)
        elif line.startswith("error"):
            keep.add(i)
        elif PANIC.search(line):
            if any_section and section[i] not in failed:
                continue
            keep.add(i)
            if SECTION.match(lines[i - 1] if i else ""):
                keep.add(i - 1)
            for j in range(i + 1, min(i + 1 + PANIC_LINES, len(lines))):
                nxt = lines[j]
                if (
                    nxt.startswith(("note:", "---- ", "test ", "failures:", "stack backtrace:"))
                    or PANIC.search(nxt)
                ):
                    break
                keep.add(j)
    if not keep:
        tail = lines[-15:]
        return ["(no failed test or panic in its output; its last lines:)"] + [
            _cut(l) for l in tail
        ]
    picked = [_cut(lines[i]) for i in sorted(keep)]
    if len(picked) > limit:
        more = len(picked) - (limit - 1)
        picked = picked[: limit - 1] + [f"[... {more} more such lines in its output]"]
    return picked


def main():
    args = sys.argv[1:]
    limit = 40
    if len(args) >= 2 and args[0] == "--limit":
        limit = int(args[1])
        args = args[2:]
    if len(args) != 1:
        sys.exit("usage: .ci/failures.py [--limit N] LOG")
    with open(args[0], "rb") as f:
        text = f.read()
    for line in excerpt(text, limit):
        print(f"  | {line}")


if __name__ == "__main__":
    main()
