#!/usr/bin/env python3
"""Fails when a Rust file under the given folders is over 500 lines or one of its functions is
over 80: the limits the product code keeps so that each file has one job and each function can
be read at once. Used by `make lint` on crates/, functions/ and examples/.

Usage: size-limits.py DIR [DIR ...]
"""
import os
import re
import sys

MAX_FILE_LINES = 500
MAX_FN_LINES = 80
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def code_of(line: str) -> str:
    """The line without strings, chars and comments, for counting braces."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return re.sub(r"//.*", "", line)


def function_length(lines: list[str], start: int) -> int:
    depth, opened = 0, False
    for end in range(start, len(lines)):
        code = code_of(lines[end])
        for ch in code:
            if ch == "{":
                depth, opened = depth + 1, True
            elif ch == "}":
                depth -= 1
        if opened and depth <= 0:
            return end - start + 1
        if not opened and code.rstrip().endswith(";"):
            return end - start + 1
    return len(lines) - start


def main() -> int:
    problems = []
    for root in sys.argv[1:]:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != "target"]
            for name in sorted(files):
                if not name.endswith(".rs"):
                    continue
                path = os.path.join(folder, name)
                lines = open(path, encoding="utf-8").read().split("\n")
                if len(lines) - 1 > MAX_FILE_LINES:
                    problems.append(f"{path}: {len(lines) - 1} lines (at most {MAX_FILE_LINES})")
                for index, line in enumerate(lines):
                    match = FN.match(line)
                    if match and (length := function_length(lines, index)) > MAX_FN_LINES:
                        problems.append(
                            f"{path}:{index + 1}: fn {match.group(6)} is {length} lines (at most {MAX_FN_LINES})"
                        )
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
