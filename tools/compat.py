"""The host compatibility matrix: runs the node-level and the server test suites against each ComfyUI
tree it is given, in this one Python environment, and writes a table (release x suite) to docs/compat.md;
then the model families suite (tests/test_families.py) and a second table, release x family: each test of
that suite records the family it runs (a junit property "family"), so a cell counts that family's tests.

Usage (through tools/compat.sh):
    compat.py [--server ends|all|none|VERSION,...] [--node all|none] [--families ends|all|none|VERSION,...]
              [--out FILE] HOST_DIR...
Never downloads anything: a tree that is missing is reported with what to do, before anything runs.
"""
import argparse
import datetime
import importlib.metadata
import os
import pathlib
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

REPO = pathlib.Path(__file__).resolve().parents[1]
# The suites, as pytest arguments (space-separated in COMPAT_NODE_SUITE / COMPAT_SERVER_SUITE override them).
# The node-level suite is every in-process test (the math and nodes tiers of tests/conftest.py), so a module
# added to those tiers runs on every release too; the families have their own table.
NODE_SUITE = os.environ.get("COMPAT_NODE_SUITE", "").split() or [
    "-m", "math or nodes", "--ignore=tests/test_families.py", "tests"]
# What the node-level cells dated up to 2026-12-06 ran: 164 tests, before the suite became the two tiers.
EARLIER_NODE_SUITE = ("tests/test_sdedit_math.py", "tests/test_nodes.py", "tests/test_sdedit_gaussian.py",
                      "tests/test_diffusers_parity.py", "tests/test_packaging.py", "tests/test_compat.py")
SERVER_SUITE = os.environ.get("COMPAT_SERVER_SUITE", "").split() or [
    "tests/test_server.py", "tests/test_compat_server.py", "tests/test_install.py"]
FAMILY_SUITE = ["tests/test_families.py"]
TORCH_FAMILY = {"torch", "torchvision", "torchaudio"}  # pinned by scripts/constraints.txt, not by the host


def host_version(tree: pathlib.Path) -> str:
    text = (tree / "comfyui_version.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def version_key(version: str):
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def check_trees(trees):
    missing = [t for t in trees if not ((t / "main.py").is_file() and (t / "comfyui_version.py").is_file())]
    if missing:
        for tree in missing:
            print(f"compat: no ComfyUI tree at {tree}.", file=sys.stderr)
        print("compat: nothing was run. Put a ComfyUI release at each path, e.g.\n"
              "  git clone --depth 1 --branch v0.3.77 <ComfyUI's git URL> /path/0.3.77\n"
              "or, offline, write a tag or commit of a ComfyUI git directory you have:\n"
              "  mkdir -p DIR && git --git-dir GIT_DIR archive REV | tar -x -C DIR\n"
              "(this command never downloads anything), then run it again.", file=sys.stderr)
        sys.exit(2)


def unmet_requirements(tree: pathlib.Path) -> list[str]:
    """The tree's requirements.txt lines this environment does not satisfy (the torch family aside)."""
    from packaging.requirements import Requirement
    unmet = []
    for line in (tree / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        if req.name.lower() in TORCH_FAMILY or (req.marker and not req.marker.evaluate()):
            continue
        try:
            have = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            unmet.append(f"{req} (not installed)")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            unmet.append(f"{req} (have {have})")
    return unmet


def run_suite(tree: pathlib.Path, files, junit: pathlib.Path) -> dict:
    env = dict(os.environ, COMFYUI_PATH=str(tree))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={junit}", *files], cwd=REPO, env=env,
                          capture_output=True, text=True)
    result = {"seconds": time.monotonic() - started, "rc": proc.returncode, "passed": 0, "failed": 0,
              "first": None, "families": {}}
    if not junit.is_file():  # pytest did not get as far as writing a report
        result["failed"] = 1
        lines = (proc.stdout + proc.stderr).strip().splitlines() or ["pytest printed nothing"]
        result["first"] = ("(start-up)", next((l[1:].strip() for l in lines if l.startswith("E ")), lines[-1]))
        return result
    for case in ET.parse(junit).iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if case.find("skipped") is not None:
            continue  # the suites never skip; a skip would show as a count mismatch between rows
        family = next((p.get("value") for p in case.iter("property") if p.get("name") == "family"), None)
        tally = result["families"].setdefault(family, {"passed": 0, "failed": 0, "first": None})
        if problem is None:
            result["passed"] += 1
            tally["passed"] += 1
            continue
        result["failed"] += 1
        tally["failed"] += 1
        if tally["first"] is None:
            tally["first"] = (case.get("name"), first_error_line(problem))
        if result["first"] is None:
            name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
            result["first"] = (name, first_error_line(problem))
    return result


def first_error_line(problem) -> str:
    """The line of a failure that says what went wrong ("E   ..." in pytest's report), else its message."""
    text = problem.text or ""
    for line in text.splitlines():
        if line.startswith("E "):
            return line[1:].strip()
    return (problem.get("message") or text.strip().splitlines()[-1:] or ["?"])[0]


def cell(result, day: str, seconds=True) -> str:
    total = result["passed"] + result["failed"]
    if result["failed"] == 0 and result.get("rc", 0) == 0:
        if not seconds:
            return f"passed: {total} tests ({day})"
        return f"passed: {total} tests, {result['seconds']:.0f} s ({day})"
    name, line = result["first"]
    line = str(line).replace("|", "/").replace("`", "'")[:200]
    return f"**failed** {result['failed']} of {total} ({day}); first: `{name}`: {line}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", pathlib.Path("/proc/meminfo").read_text()).group(1))
        memory = f"{mem_kb / 2**20:.0f} GiB RAM"
    except OSError:
        memory = "RAM unknown"
    return f"{cpu}, {os.cpu_count()} cores, {memory}, CPU only (`--cpu`), {platform.system()}"


def package(name: str) -> str:
    try:
        return f"{name} {importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{name} (not installed)"


HEADER = "| ComfyUI | node-level suite | server suite | requirements.txt lines this environment does not meet |"
FAMILIES_TITLE = "## Model families"


def read_families(out: pathlib.Path) -> tuple[list, dict]:
    """(family names, {release: {family: cell}}) of an earlier families table."""
    names, rows = [], {}
    if out.is_file():
        lines = out.read_text().splitlines()
        if FAMILIES_TITLE in lines:
            table = [line for line in lines[lines.index(FAMILIES_TITLE):] if line.startswith("| ")]
            if table:
                names = [c.strip() for c in table[0].strip("|").split(" | ")][1:]
                for line in table[1:]:
                    version, *cells = [c.strip() for c in line.strip("|").split(" | ")]
                    rows[version] = dict(zip(names, cells))
    return names, rows


def read_rows(out: pathlib.Path) -> dict:
    """The rows of an earlier table, by release: a run updates only the releases and suites it ran."""
    rows = {}
    if out.is_file():
        lines = out.read_text().splitlines()
        if HEADER in lines:
            for line in lines[lines.index(HEADER) + 2:]:
                if not line.startswith("| "):
                    break
                version, node, server, unmet = [c.strip() for c in line.strip("|").split(" | ")]
                rows[version] = {"node": node, "server": server, "unmet": unmet}
    return rows


def write_table(out: pathlib.Path, rows: dict, started: datetime.datetime, families=None) -> None:
    lines = [
        "# Host compatibility matrix",
        "",
        "Written by `bash tools/compat.sh [--server ends|all|none|VERSION,...] HOST_DIR...` (one ComfyUI",
        "tree per release, one environment for all); re-run it before each release and commit the result.",
        "A run replaces the cells it ran and keeps the others; each cell carries the day it ran.",
        "",
        f"Last run {started:%Y-%m-%d %H:%M} UTC on: {machine()}; Python {platform.python_version()}, "
        + ", ".join(package(n) for n in ("torch", "torchvision", "comfyui-frontend-package",
                                         "comfyui-workflow-templates", "transformers")) + ".",
        "",
        f"- node-level suite: `pytest {shlex.join(NODE_SUITE)}` (the real runtime in-process; "
        "cells dated up to 2026-12-06 ran an earlier subset of 164 tests: "
        f"{', '.join(f'`{f}`' for f in EARLIER_NODE_SUITE)})",
        f"- server suite: {', '.join(f'`{f}`' for f in SERVER_SUITE)} (a real `main.py --cpu` server)",
        "",
        HEADER,
        "|---|---|---|---|",
    ]
    for version in sorted(rows, key=version_key):
        row = rows[version]
        lines.append(f"| {version} | {row['node']} | {row['server']} | {row['unmet']} |")
    names, by_release = families if families is not None else read_families(out)
    if by_release:
        lines += ["", FAMILIES_TITLE, "",
                  f"{', '.join(f'`{f}`' for f in FAMILY_SUITE)} on each release: small random-weight models of each "
                  "family in the file layouts the host's own loaders detect (harness/families.py), through the "
                  "four nodes (the chain, parity with the host's sampler, the ends of strength, a mask's keep), "
                  "FlowEdit and the step line. `not run` where the release ran no test of that family: "
                  "tests/test_families.py defines a family only where the host can load its test model "
                  "(Qwen-Image's one-block model from 0.3.55, Z-Image from 0.3.77).",
                  "", "| ComfyUI | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for version in sorted(by_release, key=version_key):
            lines.append(f"| {version} | " + " | ".join(by_release[version].get(n, "not run") for n in names) + " |")
    lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


def wants_server(mode: str, version: str, i: int, count: int) -> bool:
    if mode in ("all", "none"):
        return mode == "all"
    if mode == "ends":
        return i in (0, count - 1)
    return version in mode.split(",")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=pathlib.Path, metavar="HOST_DIR")
    parser.add_argument("--server", default="ends", metavar="ends|all|none|VERSION,...",
                        help="where the server suite runs: the oldest and newest tree (default), all, none, "
                             "or the releases listed")
    parser.add_argument("--node", choices=["all", "none"], default="all", help="run the node-level suite")
    parser.add_argument("--families", default="ends", metavar="ends|all|none|VERSION,...",
                        help="where the model families suite runs (as --server)")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "docs" / "compat.md")
    args = parser.parse_args()
    trees = [t.resolve() for t in args.trees]
    check_trees(trees)
    trees.sort(key=lambda t: version_key(host_version(t)))
    started = datetime.datetime.now(datetime.timezone.utc)
    day = f"{started:%Y-%m-%d}"
    rows, failed = read_rows(args.out), False
    names, by_family = read_families(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        for i, tree in enumerate(trees):
            version = host_version(tree)
            unmet = unmet_requirements(tree)
            row = rows.setdefault(version, {"node": "not run", "server": "not run"})
            row["unmet"] = "; ".join(unmet).replace("|", "/") or "none"
            print(f"compat: ComfyUI {version} at {tree}", file=sys.stderr)
            for line in unmet:
                print(f"compat:   not met here (run on anyway): {line}", file=sys.stderr)
            for suite, files, wanted in (("node", NODE_SUITE, args.node == "all"),
                                         ("server", SERVER_SUITE, wants_server(args.server, version, i, len(trees)))):
                if not wanted:
                    continue
                result = run_suite(tree, files, pathlib.Path(tmp) / f"{version}-{suite}.xml")
                row[suite] = cell(result, day)
                failed |= bool(result["failed"] or result["rc"])
                print(f"compat:   {suite} suite: {row[suite]}", file=sys.stderr)
                write_table(args.out, rows, started, (names, by_family))  # the table so far, should a later run hang
            if wants_server(args.families, version, i, len(trees)):
                result = run_suite(tree, FAMILY_SUITE, pathlib.Path(tmp) / f"{version}-families.xml")
                failed |= bool(result["failed"] or result["rc"])
                if None in result["families"]:  # a test that records no family
                    result["families"]["(other)"] = result["families"].pop(None)
                if not result["families"]:  # pytest did not start
                    result["families"]["(start-up)"] = result
                names += [f for f in sorted(result["families"]) if f not in names]
                by_family[version] = {f: cell(t, day, seconds=False) for f, t in result["families"].items()}
                print(f"compat:   families: {by_family[version]}", file=sys.stderr)
                write_table(args.out, rows, started, (names, by_family))
    print(f"compat: table written to {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
