"""The config loader at scale: any file content, 10,000 endpoints, odd URLs."""

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.models import PreparedRequest

from health_check.config import ConfigError, Endpoint, load_endpoints

from helpers import result_for, run_in_process

SUFFIXES = [".yaml", ".yml", ".json", ".txt"]
ENDPOINT_KEYS = [
    "url", "name", "method", "headers", "body", "json", "timeout", "retries",
    "follow_redirects", "expect", "tls", "status", "verify", "ca_bundle",
]  # fmt: skip
TOP_LEVEL_KEYS = ["endpoints", "defaults", *ENDPOINT_KEYS]

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["http://127.0.0.1:9/", "https://a.invalid/x", "${HOME}"])
)
# YAML allows keys of any scalar type, and a mix of them in one mapping.
KEYS = st.sampled_from(TOP_LEVEL_KEYS) | st.text(max_size=8) | st.integers() | st.none()
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children),
    max_leaves=20,
)
# Documents shaped roughly like configs, so that the validators get exercised:
# a mapping of top-level keys, a list of entries, or any value at all.
ENTRIES = st.lists(st.dictionaries(KEYS, VALUES, max_size=6) | SCALARS, max_size=4)
DOCUMENTS = st.dictionaries(KEYS, ENTRIES | VALUES, max_size=4) | ENTRIES | VALUES
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(content=st.binary(max_size=2000), suffix=st.sampled_from(SUFFIXES))
def test_any_bytes_load_or_fail_with_a_config_error(content, suffix):
    assert_loads_or_config_error(content, suffix)


@SETTINGS
@given(content=st.text(max_size=2000), suffix=st.sampled_from(SUFFIXES))
def test_any_text_loads_or_fails_with_a_config_error(content, suffix):
    assert_loads_or_config_error(content.encode("utf-8", "surrogatepass"), suffix)


@SETTINGS
@given(document=DOCUMENTS, as_json=st.booleans())
def test_any_document_loads_or_fails_with_a_config_error(document, as_json):
    if as_json:
        content, suffix = json.dumps(document), ".json"
    else:
        content, suffix = yaml.safe_dump(document), ".yaml"
    assert_loads_or_config_error(content.encode(), suffix)


def alias_bomb(levels):
    """An endpoint whose JSON body has 10**levels values once aliases expand."""
    lists = ["      - &x0 [v, v, v, v, v, v, v, v, v, v]\n"]
    for level in range(1, levels):
        items = ", ".join([f"*x{level - 1}"] * 10)
        lists.append(f"      - &x{level} [{items}]\n")
    return "endpoints:\n  - url: http://127.0.0.1:9/\n    json:\n" + "".join(lists)


# YAML and JSON features that build what a config never holds.
ODD_CONTENTS = {
    "self_reference": ("loop.yaml", "&a [*a]\n"),
    "self_mapping": ("loop2.yaml", "&a {endpoints: *a}\n"),
    "alias_bomb": ("bomb.yaml", alias_bomb(levels=9)),
    "self_reference_in_an_entry": (
        "loop3.yaml",
        "- &a {url: 'http://127.0.0.1:9/', json: {again: *a}}\n",
    ),
    "mixed_keys": ("mixed.yaml", "1: a\nb: c\n"),
    "mixed_keys_in_an_entry": ("mixed2.yaml", "- {1: a, url: 'http://127.0.0.1:9/'}\n"),
    "deep_json": ("deep.json", "[" * 100_000 + "]" * 100_000),
    "deep_yaml": ("deep.yaml", "[" * 100_000 + "]" * 100_000),
    "binary_tag": ("bin.yaml", "- !!binary aGVsbG8=\n"),
    "set_tag": ("set.yaml", "!!set {http://127.0.0.1:9/: null}\n"),
    "date_key": ("date.yaml", "2024-01-01: x\n"),
    "python_tag": ("py.yaml", "!!python/object/apply:os.system [echo hi]\n"),
    "huge_number": ("big.json", '[{"url": "http://127.0.0.1:9/", "timeout": 1e999}]'),
    "nan": ("nan.json", '[{"url": "http://127.0.0.1:9/", "timeout": NaN}]'),
    "bom": ("bom.json", '\ufeff["http://127.0.0.1:9/"]'),
    "latin1": ("latin1.yaml", b"- http://127.0.0.1:9/caf\xe9\n"),
    "nul_in_url": ("nul.yaml", '- "http://127.0.0.1:9/\\0"\n'),
    "header_newline": (
        "crlf.yaml",
        '- {url: "http://127.0.0.1:9/", headers: {X: "a\\r\\nInjected: 1"}}\n',
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "content"), ODD_CONTENTS.values(), ids=ODD_CONTENTS)
def test_odd_yaml_and_json_features_load_or_fail_with_a_config_error(name, content):
    raw = content if isinstance(content, bytes) else content.encode()
    assert_loads_or_config_error(raw, Path(name).suffix)


def test_ten_thousand_endpoints_load(tmp_path):
    endpoints = [
        {"name": f"service {n}", "url": f"http://127.0.0.1:9/health/{n}"}
        for n in range(10_000)
    ]
    config_path = tmp_path / "many.yaml"
    config_path.write_text(yaml.safe_dump({"endpoints": endpoints}))

    loaded = load_endpoints([], str(config_path))

    assert len(loaded) == 10_000
    assert loaded[-1].name == "service 9999"
    assert loaded[-1].url == "http://127.0.0.1:9/health/9999"


def test_a_very_long_url_is_checked(app_server, tmp_path):
    url = app_server.url("/json?body=long&pad=" + "x" * 8192)

    code, report = run_in_process(tmp_path, url)

    (row,) = report["results"]
    assert code == 0 and row["ok"] is True, row
    assert row["url"] == url


def test_non_ascii_names_are_reported_as_written(app_server, tmp_path):
    names = ["café ☕", "Ünïcödé API", "名前", "emoji 🚀"]
    entries = [
        {"name": name, "url": app_server.url(f"/json?body={n}")}
        for n, name in enumerate(names)
    ]
    config_path = tmp_path / "names.yaml"
    config_path.write_text(
        yaml.safe_dump({"endpoints": entries}, allow_unicode=True), encoding="utf-8"
    )

    _, report = run_in_process(tmp_path, "--config", str(config_path))

    assert [row["name"] for row in report["results"]] == names
    raw_report = (tmp_path / "health_report.json").read_text(encoding="utf-8")
    assert all(name in raw_report for name in names)  # not \u-escaped
    assert all(result_for(report, name)["ok"] for name in names)


IDN_URL = "http://bücher.invalid/straße?q=ü"


def test_an_idn_host_is_sent_in_ascii_form():
    endpoint = load_endpoints([IDN_URL], None)[0]
    prepared = PreparedRequest()

    prepared.prepare_url(endpoint.url, None)

    assert prepared.url == "http://xn--bcher-kva.invalid/stra%C3%9Fe?q=%C3%BC"
    assert endpoint.name == IDN_URL


def test_an_idn_host_is_reported_as_written(tmp_path, app_server):
    # The .invalid name never resolves: the row shows the name as written and
    # the lookup that failed. The second endpoint keeps validation passing.
    _, report = run_in_process(tmp_path, IDN_URL, app_server.url("/ok"))

    row = result_for(report, IDN_URL)
    assert row["url"] == IDN_URL
    assert row["error_kind"] == "dns"
    assert "bücher.invalid" in row["error"]


def assert_loads_or_config_error(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        config_path = Path(folder, f"endpoints{suffix}")
        config_path.write_bytes(content)
        try:
            endpoints = load_endpoints([], str(config_path))
        except ConfigError as error:
            assert str(error) and "\n" not in str(error), repr(str(error))
            return
    assert endpoints and all(isinstance(item, Endpoint) for item in endpoints)
