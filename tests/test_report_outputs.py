"""One run writes every format from the same results, and they agree."""

import os

from prometheus_client.parser import text_string_to_metric_families

from health_check.reports.schema import validate_report

from helpers import read_report, run_main


def test_one_run_writes_four_formats_that_agree(app_server, tmp_path):
    urls = [app_server.url("/ok"), app_server.url("/status/404")]

    result = run_main(
        *urls,
        "--markdown",
        "r.md",
        "--prometheus",
        "r.prom",
        "--html",
        "r.html",
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    report = read_report(tmp_path / "health_report.json")
    validate_report(report)
    up_by_name = {row["name"]: row["ok"] for row in report["results"]}
    assert up_by_name == {urls[0]: True, urls[1]: False}

    families = text_string_to_metric_families((tmp_path / "r.prom").read_text())
    up = next(family for family in families if family.name == "health_check_up")
    assert {s.labels["name"]: s.value == 1 for s in up.samples} == up_by_name

    markdown = (tmp_path / "r.md").read_text(encoding="utf-8")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    for name in up_by_name:
        assert name in html
        assert (
            name.replace(".", "\\.").replace(":", ":") in markdown or name in markdown
        )


def test_changes_since_the_previous_run_are_shown_first(app_server, tmp_path):
    flapping = app_server.url("/fail-times/1/x")
    down_now = app_server.url("/status/500")

    first = run_main(flapping, app_server.url("/ok"), cwd=tmp_path)
    assert "changes: no previous report" in first.stdout

    (tmp_path / "health_report.json").write_text(
        (tmp_path / "health_report.json")
        .read_text(encoding="utf-8")
        .replace(app_server.url("/ok"), down_now),
        encoding="utf-8",
    )
    second = run_main(flapping, down_now, cwd=tmp_path)

    assert second.stdout.splitlines()[0] == f"went down: {down_now}"
    report = read_report(tmp_path / "health_report.json")
    assert report["changes"]["went_down"] == [down_now]


def test_step_summary_is_appended_when_github_sets_it(
    app_server, tmp_path, monkeypatch
):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    result = run_main(app_server.url("/ok"), cwd=tmp_path)

    assert result.returncode == 0
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n")
    assert app_server.url("/ok") in text.split("earlier step\n", 1)[1]


def test_an_unwritable_step_summary_is_a_warning_not_a_hang(
    app_server, tmp_path, monkeypatch
):
    fifo = tmp_path / "summary.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(fifo))

    result = run_main(app_server.url("/ok"), cwd=tmp_path, timeout_s=30)

    assert result.returncode == 0
    assert result.stderr.startswith("health-check: warning: cannot append")
    assert read_report(tmp_path / "health_report.json")["summary"]["ok_count"] == 1
