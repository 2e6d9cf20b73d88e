"""Every report format, written from one report dict, tells the same story."""

import json
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from health_check.reports import (
    append_step_summary,
    compute_changes,
    load_previous,
    render_html,
    render_json,
    render_markdown,
    render_prometheus,
    write_all,
)
from health_check.reports.schema import ReportSchemaError, load_schema, validate_report

MALICIOUS_NAME = "<script>alert(1)</script> | pipe\nnext line"
GENERATED_AT = "2025-03-04 05:06:07 UTC"


# ---------------------------------------------------------------- report makers


def make_row(name: str, ok: bool = True, **fields) -> dict:
    """A full result row; `fields` override the defaults of a healthy GET."""
    url = f"http://127.0.0.1:8080/{quote(name, safe='')}"
    row = {
        "name": name,
        "url": url,
        "method": "GET",
        "ok": ok,
        "status_code": 200 if ok else 503,
        "response_time_ms": 42.0,
        "attempts": 1,
        "flaky": False,
        "error": None if ok else "HTTP 503 Service Unavailable",
        "error_kind": None if ok else "http_status",
        "failed_expectations": [],
        "final_url": url,
        "redirects": 0,
        "body_bytes_read": 12,
        "body_truncated": False,
        "retry_after": None,
        "tls": None,
        "checked_at": "2025-03-04T05:06:06Z",
    }
    row.update(fields)
    return row


def seed_row(name: str, ok: bool) -> dict:
    """A row with only the fields the first version of the project wrote."""
    full = make_row(name, ok)
    seed_keys = ["name", "url", "ok", "status_code", "response_time_ms"]
    seed_keys += ["attempts", "error", "error_kind"]
    return {key: full[key] for key in seed_keys}


def make_report(results: list[dict], changes: dict | None = None) -> dict:
    """A report around `results`, with the summary worked out from them."""
    times = sorted(
        row["response_time_ms"]
        for row in results
        if row["ok"] and row["response_time_ms"] is not None
    )
    ok_count = sum(row["ok"] for row in results)
    report = {
        "schema_version": "1.0",
        "generated_at": GENERATED_AT,
        "tool": {"name": "health-check-flow", "version": "0.1.0"},
        "summary": {
            "total": len(results),
            "ok_count": ok_count,
            "fail_count": len(results) - ok_count,
            "flaky_count": sum(bool(row.get("flaky")) for row in results),
            "avg_response_time_ms": round(sum(times) / len(times), 1)
            if times
            else None,
            "min_response_time_ms": times[0] if times else None,
            "p50_response_time_ms": times[len(times) // 2] if times else None,
            "p95_response_time_ms": times[-1] if times else None,
            "max_response_time_ms": times[-1] if times else None,
            "duration_s": 2.25,
        },
        "validation": {
            "passed": ok_count > 0,
            "problems": [] if ok_count else ["no endpoint succeeded"],
        },
        "results": results,
    }
    if changes is not None:
        report["changes"] = changes
    return report


def tls_facts(not_after: str, days_left: float) -> dict:
    return {
        "not_after": not_after,
        "days_left": days_left,
        "issuer": "CN=Test CA",
        "subject": "CN=localhost",
        "verified": True,
    }


def mixed_rows() -> list[dict]:
    """Healthy, flaky, timed-out, failed-expectation, expired and hostile rows."""
    return [
        make_row("api", tls=tls_facts("2025-06-01T00:00:00Z", 88.8)),
        make_row("search", response_time_ms=910.4, attempts=3, flaky=True),
        make_row(
            "payments",
            ok=False,
            status_code=None,
            response_time_ms=None,
            attempts=2,
            error="no answer within 5.0 s",
            error_kind="timeout",
            final_url=None,
        ),
        make_row(
            "status page",
            ok=False,
            status_code=200,
            error="2 expectations failed",
            error_kind="expectation",
            failed_expectations=["body lacks 'ok'", "header X-Ready missing"],
        ),
        make_row(
            "legacy",
            ok=False,
            status_code=None,
            response_time_ms=None,
            error="certificate expired",
            error_kind="tls_expired",
            tls=tls_facts("2025-03-01T12:00:00Z", -2.7),
        ),
        make_row(MALICIOUS_NAME, response_time_ms=5.5, url="http://127.0.0.1/?a=<b>&c"),
        make_row("café ☕", response_time_ms=300.0),
    ]


def mixed_report() -> dict:
    changes = {
        "previous_generated_at": "2025-03-04 04:06:07 UTC",
        "note": None,
        "went_down": ["payments"],
        "recovered": ["api"],
        "slower": [{"name": "search", "previous_ms": 310.0, "current_ms": 910.4}],
    }
    return make_report(mixed_rows(), changes)


def many_endpoints_report(count: int = 500) -> dict:
    rows = [
        make_row(
            f"service-{number:03d}.internal.example",
            ok=number % 37 != 0,
            response_time_ms=float(5 + (number * 7919) % 1500),
        )
        for number in range(count)
    ]
    return make_report(rows)


REPORTS = {
    "mixed": mixed_report,
    "all up": lambda: make_report([make_row("a"), make_row("b")]),
    "all down": lambda: make_report(
        [make_row("a", ok=False), make_row("b", ok=False, response_time_ms=None)]
    ),
    "empty failed_expectations": lambda: make_report(
        [make_row("a", ok=False, failed_expectations=[])]
    ),
    "no endpoints": lambda: make_report([]),
    "seed fields only": lambda: make_report(
        [seed_row("a", True), seed_row("b", False)]
    ),
    "no previous report": lambda: make_report(
        [make_row("a")], compute_changes(None, [make_row("a")])
    ),
    "500 endpoints": many_endpoints_report,
}


@pytest.fixture(params=sorted(REPORTS))
def report(request) -> dict:
    return REPORTS[request.param]()


# ---------------------------------------------------------------- JSON + schema


def test_every_report_matches_the_schema(report):
    jsonschema.validate(report, load_schema())
    validate_report(report)


def test_json_keeps_every_value_and_non_ascii_text(report):
    text = render_json(report)

    assert json.loads(text) == report
    assert text.endswith("\n")
    if "café ☕" in json.dumps(report, ensure_ascii=False):
        assert "café ☕" in text


def test_every_schema_property_is_described():
    undescribed = [
        path
        for path, node in _schema_properties(load_schema())
        if "description" not in node
    ]
    assert undescribed == []


@pytest.mark.parametrize(
    ("break_report", "where"),
    [
        (
            lambda report: report["results"][0].update(status_code=0),
            "results/0/status_code",
        ),
        (lambda report: report["results"][1].update(attempts=0), "results/1/attempts"),
        (
            lambda report: report["results"][2].update(error_kind="gremlins"),
            "results/2/error_kind",
        ),
        (lambda report: report["summary"].pop("total"), "summary"),
        (lambda report: report.update(generated_at="yesterday"), "generated_at"),
        (lambda report: report.pop("results"), "the top level"),
    ],
)
def test_validate_report_names_the_broken_field(break_report, where):
    report = mixed_report()
    break_report(report)

    with pytest.raises(ReportSchemaError) as caught:
        validate_report(report)
    assert f"at {where}:" in str(caught.value)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- Prometheus


def test_prometheus_values_agree_with_the_json(report):
    families = _prometheus_samples(render_prometheus(report))
    by_name = {row["name"]: row for row in report["results"]}

    for (metric, name), value in families["per_endpoint"].items():
        row = by_name[name]
        assert value == _expected_metric(metric, row)
    for row in report["results"]:
        assert families["per_endpoint"][("health_check_up", row["name"])] == (
            1 if row["ok"] else 0
        )


def test_prometheus_omits_values_the_report_lacks():
    report = make_report(
        [make_row("down", ok=False, status_code=None, response_time_ms=None)]
    )
    samples = _prometheus_samples(render_prometheus(report))["per_endpoint"]

    assert ("health_check_status_code", "down") not in samples
    assert ("health_check_response_time_seconds", "down") not in samples
    assert ("health_check_tls_not_after_timestamp_seconds", "down") not in samples
    assert samples[("health_check_up", "down")] == 0


def test_prometheus_run_metrics_and_escaped_labels():
    text = render_prometheus(mixed_report())
    families = {family.name: family for family in text_string_to_metric_families(text)}

    run_at = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()
    assert (
        families["health_check_last_run_timestamp_seconds"].samples[0].value == run_at
    )
    assert families["health_check_run_duration_seconds"].samples[0].value == 2.25
    names = {sample.labels["name"] for sample in families["health_check_up"].samples}
    assert MALICIOUS_NAME in names
    assert all(family.type == "gauge" for family in families.values())
    assert text.count("# HELP ") == text.count("# TYPE ") == len(families)


# ---------------------------------------------------------------- HTML


def test_html_has_a_row_per_endpoint_failures_first(report):
    page = _parse_html(render_html(report))

    states = ["up" if row["ok"] else "down" for row in report["results"]]
    assert [row["state"] for row in page.rows] == sorted(states, key="up".__eq__)
    assert sorted(row["name"] for row in page.rows) == sorted(
        row["name"] for row in report["results"]
    )


def test_html_loads_nothing_from_outside(report):
    text = render_html(report)
    page = _parse_html(text)

    assert page.tag_count.get("script", 0) == 0
    for tag, attribute, value in page.attributes:
        if tag in {"link", "img", "style", "script", "iframe", "source", "object"}:
            assert not re.match(r"\s*(https?:)?//", value), (tag, attribute, value)
    assert "url(" not in page.style_text and "@import" not in page.style_text


def test_html_escapes_hostile_names():
    text = render_html(mixed_report())
    page = _parse_html(text)

    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert MALICIOUS_NAME in [row["name"] for row in page.rows]
    assert "http://127.0.0.1/?a=&lt;b&gt;&amp;c" in text


def test_html_banner_and_changes():
    page = _parse_html(render_html(mixed_report()))

    assert page.banner == "3 of 7 endpoints down"
    assert "Went down: payments" in page.changes_text
    assert "Recovered: api" in page.changes_text
    assert "search: 310.0 ms → 910.4 ms" in page.changes_text


@pytest.mark.parametrize(
    ("oks", "banner", "mood"),
    [
        ([True, True, True], "All 3 endpoints up", "up"),
        ([False, True, False], "2 of 3 endpoints down", "down"),
        ([False, False], "All 2 endpoints down", "down"),
        ([True], "The endpoint is up", "up"),
        ([False], "The endpoint is down", "down"),
        ([], "No endpoints checked", "none"),
    ],
)
def test_html_banner_says_the_overall_state(oks, banner, mood):
    rows = [make_row(f"endpoint {number}", ok=ok) for number, ok in enumerate(oks)]
    text = render_html(make_report(rows))

    assert _parse_html(text).banner == banner
    assert f'<header class="banner {mood}">' in text
    assert render_markdown(make_report(rows)).startswith(f"## Health check: {banner}\n")


def test_html_renders_500_endpoints():
    report = many_endpoints_report()
    text = render_html(report)
    page = _parse_html(text)

    assert len(page.rows) == 500
    assert page.banner == f"{report['summary']['fail_count']} of 500 endpoints down"
    assert len(text.encode()) < 1_000_000


# ---------------------------------------------------------------- Markdown


def test_markdown_tables_have_a_row_per_endpoint_failures_first(report):
    tables = _markdown_tables(render_markdown(report))
    summary_table = tables[0]
    results_table = tables[1] if len(tables) > 1 else []

    assert len(summary_table) == 2
    assert len(results_table) == (
        len(report["results"]) + 1 if report["results"] else 0
    )
    states = [cells[0] for cells in results_table[1:]]
    assert states == sorted(states, key=lambda state: "up" in state)
    assert all(len(cells) == len(results_table[0]) for cells in results_table)


def test_markdown_escapes_pipes_and_newlines_in_cells():
    text = render_markdown(mixed_report())
    results_table = _markdown_tables(text)[1]

    names = [_markdown_unescape(cells[1]) for cells in results_table[1:]]
    assert MALICIOUS_NAME in names
    assert "<script>" not in text


def test_markdown_lists_failure_reasons_and_changes():
    text = render_markdown(mixed_report())

    assert "body lacks 'ok'" in _markdown_unescape(text)
    assert "no answer within 5.0 s" in text
    assert "- **Went down:** payments" in text
    assert text.index("### Changes") < text.index("### Results")


def test_step_summary_is_appended_when_github_sets_it(tmp_path, monkeypatch):
    summary_file = tmp_path / "step_summary.md"
    summary_file.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))

    assert append_step_summary("## this run") is True
    assert summary_file.read_text(encoding="utf-8") == "earlier step\n## this run\n"


def test_step_summary_is_skipped_outside_github(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    assert append_step_summary("## this run") is False


# ---------------------------------------------------------------- changes


def timing_case(previous_ms: float, current_ms: float, slower: bool, case_id: str):
    """A case where one healthy endpoint's response time moves."""
    return pytest.param(
        [make_row("a", response_time_ms=previous_ms)],
        [make_row("a", response_time_ms=current_ms)],
        ("", "", "a" if slower else ""),
        id=case_id,
    )


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        pytest.param(
            [make_row("a")], [make_row("a", ok=False)], ("a", "", ""), id="went down"
        ),
        pytest.param(
            [make_row("a", ok=False)], [make_row("a")], ("", "a", ""), id="recovered"
        ),
        timing_case(100.0, 250.0, slower=True, case_id="slower"),
        timing_case(5.0, 50.0, slower=False, case_id="ten times but only 45 ms more"),
        timing_case(300.0, 500.0, slower=False, case_id="200 ms more, not doubled"),
        timing_case(100.0, 200.0, slower=False, case_id="exactly doubled"),
        pytest.param(
            [make_row("a", ok=False, response_time_ms=10.0)],
            [make_row("a", ok=False, response_time_ms=900.0)],
            ("", "", ""),
            id="still down and slower",
        ),
        pytest.param(
            [make_row("a"), make_row("b", ok=False)],
            [make_row("a"), make_row("b", ok=False)],
            ("", "", ""),
            id="unchanged",
        ),
        pytest.param(
            [make_row("gone")],
            [make_row("new", ok=False)],
            ("", "", ""),
            id="endpoints added and removed",
        ),
    ],
)
def test_compute_changes(previous, current, expected):
    changes = compute_changes(make_report(previous), current)

    found = (
        ",".join(changes["went_down"]),
        ",".join(changes["recovered"]),
        ",".join(entry["name"] for entry in changes["slower"]),
    )
    assert found == expected
    assert changes["previous_generated_at"] == GENERATED_AT
    validate_report(make_report(current, changes))


def test_slower_entry_keeps_both_times():
    changes = compute_changes(
        make_report([make_row("a", response_time_ms=100.0)]),
        [make_row("a", response_time_ms=250.0)],
    )

    assert changes["slower"] == [
        {"name": "a", "previous_ms": 100.0, "current_ms": 250.0}
    ]


def test_previous_report_round_trip(tmp_path):
    previous = mixed_report()
    path = tmp_path / "health_report.json"
    write_all(previous, path)

    loaded, note = load_previous(path)

    assert (loaded, note) == (previous, None)


@pytest.mark.parametrize(
    ("content", "note_says"),
    [
        pytest.param(None, "no previous report", id="missing"),
        pytest.param(b'{"generated_at": "2025-', "not JSON", id="corrupt"),
        pytest.param(b"\xff\xfe\x00garbage", "unreadable", id="not UTF-8"),
        pytest.param(b"[1, 2, 3]", "ignored", id="a list"),
        pytest.param(b'{"summary": {}, "results": []}', "ignored", id="wrong shape"),
        pytest.param(b"[" * 100_000, "not JSON", id="absurdly nested"),
        pytest.param("directory", "unreadable", id="a directory"),
    ],
)
def test_unusable_previous_report_gives_a_note(tmp_path, content, note_says):
    path = tmp_path / "health_report.json"
    if content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)

    previous, note = load_previous(path)
    changes = compute_changes(previous, [make_row("a")], note=note)

    assert previous is None
    assert note_says in note and "\n" not in note
    assert changes["note"] == note
    assert changes["went_down"] == changes["recovered"] == changes["slower"] == []
    validate_report(make_report([make_row("a")], changes))


# ---------------------------------------------------------------- all formats


def test_the_four_formats_agree_on_up_and_down():
    report = mixed_report()

    from_json = {
        row["name"]: row["ok"] for row in json.loads(render_json(report))["results"]
    }
    prometheus = _prometheus_samples(render_prometheus(report))["per_endpoint"]
    from_prometheus = {
        name: value == 1
        for (metric, name), value in prometheus.items()
        if metric == "health_check_up"
    }
    results_table = _markdown_tables(render_markdown(report))[1]
    from_markdown = {
        _markdown_unescape(cells[1]): "up" in cells[0] for cells in results_table[1:]
    }
    from_html = {
        row["name"]: row["state"] == "up"
        for row in _parse_html(render_html(report)).rows
    }

    assert from_json == from_prometheus == from_markdown == from_html
    assert sorted(from_json.values()) == [False, False, False, True, True, True, True]


def test_write_all_writes_each_requested_format(tmp_path):
    report = mixed_report()
    paths = {
        "json_path": tmp_path / "out" / "health_report.json",
        "markdown_path": tmp_path / "out" / "health_report.md",
        "prometheus_path": tmp_path / "out" / "health_check.prom",
        "html_path": tmp_path / "out" / "health_report.html",
    }

    written = write_all(report, **paths)

    assert written == list(paths.values())
    assert json.loads(paths["json_path"].read_text(encoding="utf-8")) == report
    assert paths["markdown_path"].read_text(encoding="utf-8") == render_markdown(report)
    assert paths["prometheus_path"].read_text(encoding="utf-8") == render_prometheus(
        report
    )
    assert paths["html_path"].read_text(encoding="utf-8") == render_html(report)


# ---------------------------------------------------------------- screenshot


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed"
)
@pytest.mark.timeout(90)
def test_html_screenshot_on_a_phone_sized_window(tmp_path):
    page = tmp_path / "health_report.html"
    page.write_text(render_html(mixed_report()), encoding="utf-8")
    picture = tmp_path / "phone.png"

    take_screenshot(page, picture, width_px=375, height_px=800)

    width_px, height_px, distinct_bytes = _png_facts(picture)
    assert (width_px, height_px) == (375, 800)
    assert distinct_bytes > 16, "the screenshot is blank"


def take_screenshot(page: Path, picture: Path, width_px: int, height_px: int) -> None:
    """Render `page` with headless chromium, kept off the network."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={picture}",
                f"--window-size={width_px},{height_px}",
                page.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=80,
        )


# ---------------------------------------------------------------- helpers


def _schema_properties(node, path="#"):
    """Yield (path, schema) for every named property anywhere in the schema."""
    if isinstance(node, dict):
        for name, child in node.get("properties", {}).items():
            yield f"{path}/{name}", child
        for key, child in node.items():
            yield from _schema_properties(child, f"{path}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _schema_properties(child, f"{path}/{index}")


def _prometheus_samples(text: str) -> dict:
    per_endpoint, run = {}, {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge"
        for sample in family.samples:
            if "name" in sample.labels:
                per_endpoint[(sample.name, sample.labels["name"])] = sample.value
            else:
                run[sample.name] = sample.value
    return {"per_endpoint": per_endpoint, "run": run}


def _expected_metric(metric: str, row: dict) -> float:
    if metric == "health_check_up":
        return 1 if row["ok"] else 0
    if metric == "health_check_response_time_seconds":
        return row["response_time_ms"] / 1000
    if metric == "health_check_status_code":
        return row["status_code"]
    if metric == "health_check_attempts":
        return row["attempts"]
    if metric == "health_check_tls_not_after_timestamp_seconds":
        moment = datetime.strptime(row["tls"]["not_after"], "%Y-%m-%dT%H:%M:%SZ")
        return moment.replace(tzinfo=UTC).timestamp()
    raise AssertionError(f"unexpected metric {metric}")


class _ReportPage(HTMLParser):
    """Collects what the HTML tests look at: rows, names, banner, assets."""

    def __init__(self):
        super().__init__()
        self.rows, self.attributes, self.tag_count = [], [], {}
        self.banner = self.changes_text = self.style_text = ""
        self._open = []

    def handle_starttag(self, tag, attrs):
        self.tag_count[tag] = self.tag_count.get(tag, 0) + 1
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        classes = (dict(attrs).get("class") or "").split()
        if tag == "tr" and self._inside("tbody"):
            self.rows.append({"state": classes[0], "name": ""})
        self._open.append((tag, classes))

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if self._inside("style"):
            self.style_text += data
        if self._inside("header") and self._inside("h1"):
            self.banner += data
        if self._inside_class("changes"):
            self.changes_text += data
        if self._inside_class("name") and self.rows:
            self.rows[-1]["name"] += data

    def _inside(self, tag):
        return any(open_tag == tag for open_tag, _ in self._open)

    def _inside_class(self, name):
        return any(name in classes for _, classes in self._open)


def _parse_html(text: str) -> _ReportPage:
    page = _ReportPage()
    page.feed(text)
    page.close()
    return page


def _markdown_tables(text: str) -> list[list[list[str]]]:
    """Each table as rows of cells, without the --- separator row."""
    tables, current = [], []
    for line in text.split("\n") + [""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            if not all(set(cell) <= {"-"} for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _markdown_unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text.replace("<br>", "\n"))


def _png_facts(path: Path) -> tuple[int, int, int]:
    """Width, height and how many distinct byte values the pixels hold."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width_px, height_px = struct.unpack(">II", data[16:24])
    pixels, offset = b"", 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            pixels += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return width_px, height_px, len(set(zlib.decompress(pixels)))


def test_prometheus_seconds_carry_no_float_noise():
    report = make_report([{**make_row("a"), "response_time_ms": 5.1}])

    text = render_prometheus(report)

    assert 'health_check_response_time_seconds{name="a"' in text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith("health_check_response_time_seconds{")
    )
    assert line.endswith(" 0.0051")
