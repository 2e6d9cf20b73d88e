"""The example GitHub Actions workflow: actionlint's verdict and what it promises."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from croniter import croniter

from health_check import cli

from helpers import ROOT

pytestmark = pytest.mark.timeout(60)

WORKFLOW = ROOT / ".github" / "workflows" / "health-check.yml"


def test_actionlint_finds_nothing():
    actionlint = Path(sys.executable).parent / "actionlint"
    assert actionlint.exists(), "install requirements-dev.txt: actionlint is missing"

    # shellcheck and pyflakes are used when found on PATH; switching them off
    # keeps the verdict the same on every machine.
    run = subprocess.run(
        [str(actionlint), "-no-color", "-shellcheck=", "-pyflakes=", str(WORKFLOW)],
        capture_output=True,
        text=True,
    )

    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_runs_on_a_schedule_and_on_demand():
    workflow = _workflow()
    # YAML 1.1 reads the bare key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))

    assert "workflow_dispatch" in triggers
    (schedule,) = triggers["schedule"]
    assert croniter.is_valid(schedule["cron"])
    assert len(schedule["cron"].split()) == 5  # GitHub has no seconds field


def test_installs_from_requirements_and_keeps_the_reports():
    steps = _steps()
    install = next(step for step in steps if "pip install" in step.get("run", ""))
    upload = next(
        step for step in steps if step.get("uses", "").startswith("actions/upload")
    )

    assert "-r requirements.txt" in install["run"]
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "reports/"
    # main.py writes the job summary itself; a second copy would repeat it.
    assert not any("GITHUB_STEP_SUMMARY" in step.get("run", "") for step in steps)


def test_the_check_step_fails_the_job_by_exit_code():
    command = _check_command()

    # No `|| true`, no `continue-on-error`: the exit code decides the job.
    assert command[:2] == ["python", "main.py"]
    assert not any(step.get("continue-on-error") for step in _steps())
    assert "--strict" in command


def test_every_option_the_workflow_passes_exists():
    options = cli.parse_args(_check_command()[2:])

    assert options.output == "reports/health_report.json"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps() -> list[dict]:
    (job,) = _workflow()["jobs"].values()
    return job["steps"]


def _check_command() -> list[str]:
    step = next(step for step in _steps() if "main.py" in step.get("run", ""))
    return shlex.split(step["run"])
