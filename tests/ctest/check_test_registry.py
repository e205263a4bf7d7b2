#!/usr/bin/env python3
"""Fails when the registered test suite could pass half-empty or hang.

Reads what ctest would run (ctest --show-only=json-v1) and fails on:
  - a test without a TIMEOUT (ctest's default is 1500 s: a hung test would eat CI's budget);
  - a test labelled `unit` whose TIMEOUT is above the unit limit (60 s);
  - a gtest binary named on the command line of which no test was registered
    (gtest_discover_tests on a binary that lists nothing registers nothing, silently);
  - a test whose program does not exist, or a `<target>_NOT_BUILT` placeholder (a test binary
    that was never built).

usage: check_test_registry.py --ctest CTEST --build-dir DIR [--unit-timeout S] [--binary PATH]...
       check_test_registry.py --self-test
"""
import argparse
import json
import os
import subprocess
import sys


def properties(test):
    return {p["name"]: p["value"] for p in test.get("properties", [])}


def problems(info, binaries, unit_timeout):
    """The list of problems of a json-v1 document, one line each."""
    found = []
    per_binary = {os.path.realpath(b): 0 for b in binaries}
    for test in info.get("tests", []):
        name = test.get("name", "?")
        props = properties(test)
        if name.endswith("_NOT_BUILT"):
            found.append(f"{name}: its test binary was not built")
        timeout = props.get("TIMEOUT")
        labels = props.get("LABELS", [])
        if isinstance(labels, str):
            labels = labels.split(";")
        if timeout is None or float(timeout) <= 0:
            found.append(f"{name}: no TIMEOUT (give it one where it is registered)")
        elif "unit" in labels and float(timeout) > unit_timeout:
            found.append(f"{name}: a unit test with TIMEOUT {timeout} s, above {unit_timeout} s "
                         "(make it cheaper, or label it integration)")
        command = test.get("command") or []
        if not command:  # ctest shows no command when the program does not exist
            found.append(f"{name}: its program does not exist (not built?)")
        else:
            real = os.path.realpath(command[0])
            if real in per_binary:
                per_binary[real] += 1
    for binary, count in per_binary.items():
        if count == 0:
            found.append(f"{os.path.basename(binary)}: no test registered from it (it lists "
                         "none to gtest_discover_tests, or was not built)")
    return found


def self_test():
    """The checker must see each kind of gap; 0 when it does."""
    info = {"tests": [
        {"name": "A.ok", "command": ["/x/one", "--gtest_filter=A.ok"],
         "properties": [{"name": "TIMEOUT", "value": 60}, {"name": "LABELS", "value": ["unit"]}]},
        {"name": "A.no_timeout", "command": ["/x/one"], "properties": []},
        {"name": "A.slow_unit", "command": ["/x/one"],
         "properties": [{"name": "TIMEOUT", "value": 61}, {"name": "LABELS", "value": ["unit"]}]},
        {"name": "two_NOT_BUILT", "command": ["two_NOT_BUILT"],
         "properties": [{"name": "TIMEOUT", "value": 60}]},
        {"name": "B.gone", "properties": [{"name": "TIMEOUT", "value": 60}]},
    ]}
    got = problems(info, ["/x/one", "/x/empty"], 60)
    want = ["A.no_timeout:", "A.slow_unit:", "two_NOT_BUILT:", "B.gone:", "empty:"]
    ok = len(got) == len(want) and all(any(g.startswith(w) for g in got) for w in want)
    clean = problems({"tests": info["tests"][:1]}, ["/x/one"], 60)
    if not ok or clean:
        print("the registry check misses a gap or invents one:", got, clean, file=sys.stderr)
        return 1
    print("the registry check sees every kind of gap")
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ctest")
    parser.add_argument("--build-dir")
    parser.add_argument("--unit-timeout", type=float, default=60)
    parser.add_argument("--binary", action="append", default=[])
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    if not args.ctest or not args.build_dir:
        parser.error("--ctest and --build-dir are needed")
    shown = subprocess.run([args.ctest, "--test-dir", args.build_dir, "--show-only=json-v1"],
                           capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        print(f"ctest --show-only failed: {shown.stderr.strip()}", file=sys.stderr)
        return 1
    info = json.loads(shown.stdout)
    found = problems(info, args.binary, args.unit_timeout)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"{len(found)} problem(s) in the registered tests", file=sys.stderr)
        return 1
    print(f"{len(info.get('tests', []))} tests, each with a timeout; every test binary "
          f"registered tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
