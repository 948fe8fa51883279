"""The pack's own code stays free of what the Comfy Registry's scan flags: checked with ruff.toml's rules,
and the rules are shown to bite on a probe module placed among the pack's nodes."""
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent))


def ruff(*paths, cwd=REPO):
    assert RUFF, "ruff is missing from the test environment: install requirements-dev.txt"
    return subprocess.run([RUFF, "check", "--output-format", "concise", "--no-cache", *map(str, paths)],
                          cwd=cwd, capture_output=True, text=True)


def test_pack_passes_the_security_rules():
    result = ruff("nodes", "__init__.py")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("line, rule", [
    ('eval("1 + 1")', "S307"),
    ('exec("x = 1")', "S102"),
    ("import subprocess", "TID251"),
    ("import urllib.request", "TID251"),
    ("import socket", "TID251"),
    ("import pickle", "TID251"),
    ("from aiohttp import ClientSession", "TID251"),
    ("import ray", "TID251"),
])
def test_rules_flag_what_the_pack_must_not_do(tmp_path, line, rule):
    # A copy of the config and a probe module in a nodes/ folder, so the per-file rules of the pack apply.
    shutil.copy(REPO / "ruff.toml", tmp_path / "ruff.toml")
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "probe.py").write_text(line + "\n")
    result = ruff("nodes", cwd=tmp_path)
    assert rule in result.stdout, result.stdout + result.stderr


def test_js_talks_only_to_the_local_server():
    """fetch/XMLHttpRequest/WebSocket/import in js/ may only use relative or same-origin URLs."""
    absolute = re.compile(r"""(fetch|XMLHttpRequest|WebSocket|EventSource|import)\s*\(?\s*[`'"](https?:|wss?:)?//""")
    offenders = [f"{path.relative_to(REPO)}: {line.strip()}"
                 for path in REPO.glob("js/**/*.js")
                 for line in path.read_text().splitlines() if absolute.search(line)]
    assert not offenders, offenders


def test_js_never_writes_html_from_text():
    """User text reaches the page only through textContent: no innerHTML/outerHTML/insertAdjacentHTML."""
    offenders = [f"{path.relative_to(REPO)}: {line.strip()}"
                 for path in REPO.glob("js/**/*.js")
                 for line in path.read_text().splitlines()
                 if re.search(r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write)\b", line)]
    assert not offenders, offenders


def test_the_pack_never_imports_ray():
    """Ray is a dependency of the batch command (scripts/batch.py) and its tests only: not of the pack's code,
    requirements.txt or pyproject's dependencies. ruff.toml bans it in the pack too."""
    import ast
    import tomllib
    for path in [REPO / "__init__.py", *sorted((REPO / "nodes").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] == "ray"], path
    assert "ray" not in (REPO / "requirements.txt").read_text().lower()
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in dependencies if d.lower().startswith("ray")]
    assert any(line.startswith("ray[data]==") for line in (REPO / "requirements-dev.txt").read_text().splitlines())
