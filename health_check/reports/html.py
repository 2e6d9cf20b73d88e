"""The report as one self-contained HTML page for people."""

import html

from health_check.reports import wording

# Nothing outside the file may load, even if a crafted name slipped past escaping.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"

# Tiny responses still get a visible sliver of bar.
MIN_BAR_PERCENT = 0.5

STYLE = """
:root { --ink: #1f2328; --muted: #59636e; --paper: #ffffff; --line: #d1d9e0;
  --up: #1a7f37; --down: #cf222e; --none: #59636e; --track: #eef1f4;
  --bar: #0969da; --tag: #fff8c5; }
@media (prefers-color-scheme: dark) {
  :root { --ink: #e6edf3; --muted: #9198a1; --paper: #0d1117; --line: #3d444d;
    --up: #2ea043; --down: #f85149; --track: #262c36; --bar: #4493f8;
    --tag: #3b2e00; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--ink); background: var(--paper); }
.page { max-width: 1200px; margin: 0 auto; padding: 16px; }
.banner { color: #fff; border-radius: 10px; padding: 18px 20px; }
.banner.up { background: var(--up); }
.banner.down { background: var(--down); }
.banner.none { background: var(--none); }
.banner h1 { margin: 0; font-size: 1.9rem; line-height: 1.2; }
.banner p { margin: 6px 0 0; opacity: .9; }
.figures { display: flex; flex-wrap: wrap; gap: 8px; margin: 14px 0 0; padding: 0; }
.figures div { border: 1px solid var(--line); border-radius: 8px; padding: 6px 12px;
  min-width: 84px; }
.figures dt { font-size: .8rem; color: var(--muted); }
.figures dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; }
h2 { font-size: 1.15rem; margin: 22px 0 8px; }
.changes ul, .problems ul { margin: 6px 0; padding-left: 20px; }
.changes li, .problems li { overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: .8rem; color: var(--muted); font-weight: 600;
  border-bottom: 2px solid var(--line); padding: 6px 8px; }
td { border-bottom: 1px solid var(--line); padding: 8px; vertical-align: top; }
tr.down td:first-child { box-shadow: inset 4px 0 var(--down); }
tr.up td:first-child { box-shadow: inset 4px 0 var(--up); }
.state { white-space: nowrap; }
.badge { display: inline-block; font-size: .75rem; font-weight: 700;
  letter-spacing: .04em; border-radius: 999px; padding: 1px 8px; color: #fff; }
tr.up .badge { background: var(--up); }
tr.down .badge { background: var(--down); }
.tag { display: inline-block; font-size: .75rem; border-radius: 4px; padding: 0 6px;
  margin-left: 4px; background: var(--tag); }
.name { font-weight: 600; overflow-wrap: anywhere; }
.url, .details { color: var(--muted); font-size: .85rem; overflow-wrap: anywhere; }
.http, .time { white-space: nowrap; font-variant-numeric: tabular-nums; }
.time { width: 30%; }
.timing { display: flex; align-items: center; gap: 8px; }
.bar { flex: 1; height: 8px; background: var(--track); border-radius: 4px;
  min-width: 60px; }
.ms { min-width: 5.5em; text-align: right; }
.bar span { display: block; height: 100%; background: var(--bar); border-radius: 4px; }
tr.down .bar span { background: var(--down); }
.reason { overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: .8rem; margin: 18px 0 8px; }
@media (max-width: 640px) {
  .page { padding: 10px; }
  .banner { padding: 14px 16px; }
  .banner h1 { font-size: 1.5rem; }
  .figures { gap: 6px; }
  .figures div { min-width: 0; padding: 3px 8px; }
  .figures dt { font-size: .72rem; }
  .figures dd { font-size: .85rem; }
  /* Each endpoint becomes a card: name and badge, HTTP and time, reason. */
  thead { display: none; }
  table, tbody { display: block; }
  tr { display: grid; grid-template-columns: auto 1fr auto; column-gap: 10px;
    grid-template-areas: "endpoint endpoint state" "http time time"
      "reason reason reason";
    border: 1px solid var(--line); border-radius: 8px; margin-bottom: 8px;
    padding: 6px 10px; }
  tr.down { border-left: 6px solid var(--down); }
  tr.up { border-left: 6px solid var(--up); }
  td { display: block; border: none; padding: 2px 0; }
  tr.down td:first-child, tr.up td:first-child { box-shadow: none; }
  .state { grid-area: state; text-align: right; white-space: normal; }
  .endpoint { grid-area: endpoint; min-width: 0; }
  .http { grid-area: http; }
  .time { grid-area: time; width: auto; }
  .reason { grid-area: reason; }
  .http::before { content: "HTTP "; color: var(--muted); font-size: .8rem; }
  .reason:empty { display: none; }
}
"""


def render_html(report: dict) -> str:
    """Return a page showing the overall state, changes and one row per endpoint.

    Every value that came from endpoints or configuration is HTML-escaped.
    """
    summary = report.get("summary", {})
    title = wording.headline(summary)
    body = [
        _banner(report, title),
        _figures(summary),
        _changes(report.get("changes")),
        _problems(report.get("validation")),
        _results(report.get("results", []), report.get("changes")),
        _footer(report),
    ]
    return _page(title, "\n".join(part for part in body if part))


def _page(title: str, body: str) -> str:
    head = [
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="Content-Security-Policy"'
        f' content="{CONTENT_SECURITY_POLICY}">',
        f"<title>Health check: {_text(title)}</title>",
        f"<style>{STYLE}</style>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n'
        + "\n".join(head)
        + f'\n</head>\n<body>\n<div class="page">\n{body}\n</div>\n</body>\n</html>\n'
    )


def _banner(report: dict, title: str) -> str:
    summary = report.get("summary", {})
    if not summary.get("total"):
        mood = "none"
    else:
        mood = "down" if summary.get("fail_count") else "up"
    when = report.get("generated_at", "unknown time")
    return (
        f'<header class="banner {mood}"><h1>{_text(title)}</h1>'
        f"<p>Checked {_text(when)}</p></header>"
    )


def _figures(summary: dict) -> str:
    cells = [
        f"<div><dt>{label}</dt><dd>{_text(text)}</dd></div>"
        for label, text in wording.summary_figures(summary)
    ]
    return f'<dl class="figures">{"".join(cells)}</dl>'


def _changes(changes: dict | None) -> str:
    if changes is None:
        return ""

    items = [
        f"<li><strong>{heading}:</strong> {_text(', '.join(entries))}</li>"
        for heading, entries in wording.change_groups(changes)
    ]
    listing = f"<ul>{''.join(items)}</ul>" if items else ""
    return (
        '<section class="changes"><h2>Changes</h2>'
        f"<p>{_text(wording.change_intro(changes))}</p>{listing}</section>"
    )


def _problems(validation: dict | None) -> str:
    if not validation or validation.get("passed", True):
        return ""

    items = "".join(f"<li>{_text(problem)}</li>" for problem in validation["problems"])
    return (
        '<section class="problems"><h2>Validation problems</h2>'
        f"<ul>{items}</ul></section>"
    )


def _results(results: list[dict], changes: dict | None) -> str:
    if not results:
        return (
            '<section class="results"><h2>Endpoints</h2><p>None checked.</p></section>'
        )

    longest_ms = max((row.get("response_time_ms") or 0 for row in results), default=0)
    tags = wording.change_tags(changes)
    rows = "\n".join(
        _row(result, longest_ms, tags.get(result.get("name")))
        for result in wording.failures_first(results)
    )
    return (
        '<section class="results"><h2>Endpoints</h2><table>\n'
        "<thead><tr><th>State</th><th>Endpoint</th><th>HTTP</th>"
        "<th>Response time</th><th>Reason</th></tr></thead>\n"
        f"<tbody>\n{rows}\n</tbody></table></section>"
    )


def _row(result: dict, longest_ms: float, tag: str | None) -> str:
    state = wording.state_word(result)
    tag_html = f' <span class="tag">{_text(tag)}</span>' if tag else ""
    status_code = result.get("status_code")
    details = wording.details(result)
    details_html = f'<div class="details">{_text(details)}</div>' if details else ""
    return (
        f'<tr class="{state}">'
        f'<td class="state"><span class="badge">{state.upper()}</span>{tag_html}</td>'
        f'<td class="endpoint"><div class="name">{_text(result.get("name", ""))}</div>'
        f'<div class="url">{_text(result.get("url", ""))}</div>{details_html}</td>'
        '<td class="http">'
        f"{wording.EMPTY if status_code is None else _text(status_code)}</td>"
        '<td class="time">'
        f"{_bar(result.get('response_time_ms'), longest_ms)}</td>"
        f'<td class="reason">{_text(wording.reason(result))}</td>'
        "</tr>"
    )


def _bar(response_time_ms: float | None, longest_ms: float) -> str:
    if response_time_ms is None:
        return wording.EMPTY

    percent = 100.0 * response_time_ms / longest_ms if longest_ms else 0.0
    percent = max(percent, MIN_BAR_PERCENT)
    return (
        '<div class="timing"><div class="bar">'
        f'<span style="width:{percent:.1f}%"></span></div>'
        f'<span class="ms">{_text(wording.format_ms(response_time_ms))}</span></div>'
    )


def _footer(report: dict) -> str:
    tool = report.get("tool") or {}
    made_by = f"{tool.get('name', 'health-check-flow')} {tool.get('version', '')}"
    schema = report.get("schema_version", "")
    return f"<footer>{_text(made_by.strip())} · report schema {_text(schema)}</footer>"


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)
