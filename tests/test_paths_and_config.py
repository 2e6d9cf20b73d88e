"""Output paths that are not plain files, a previous report that is not one,
the log's bound, and config mistakes that used to slip through.

Special files (FIFOs, device nodes) are only ever created under tmp_path;
no test points at a real /dev file.
"""

import logging
import os
import stat

import pytest

from health_check import config, pipeline
from health_check.files import write_atomic
from health_check.reports import changes

from helpers import run_main

URL = "http://127.0.0.1:1/"


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def char_device(tmp_path):
    """A character device node under tmp_path, with /dev/zero's numbers."""
    if os.geteuid() != 0:
        pytest.skip("only root may create device nodes")
    path = tmp_path / "zero"
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    return path


# --- 1. never rename over a device, FIFO or socket --------------------------


@pytest.mark.timeout(10)
def test_write_atomic_refuses_a_fifo_and_leaves_it_a_fifo(fifo):
    with pytest.raises(OSError, match="not a regular file") as raised:
        write_atomic(fifo, "{}")

    assert raised.value.filename == str(fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [path.name for path in fifo.parent.iterdir()] == ["fifo"]


def test_write_atomic_refuses_a_device_node_and_leaves_it_a_device(char_device):
    with pytest.raises(OSError, match="not a regular file"):
        write_atomic(char_device, "{}")

    assert stat.S_ISCHR(os.stat(char_device).st_mode)


def test_write_atomic_refuses_a_symlink_to_a_fifo(fifo):
    link = fifo.parent / "link.json"
    link.symlink_to(fifo)

    with pytest.raises(OSError, match="not a regular file"):
        write_atomic(link, "{}")

    assert stat.S_ISFIFO(os.stat(link).st_mode)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("option", ["--output", "--markdown", "--html"])
def test_a_fifo_as_output_is_refused_before_any_check(option, fifo, tmp_path):
    result = run_main(URL, option, str(fifo), cwd=tmp_path)

    assert result.returncode == 2
    assert_one_error_line(result.stderr, f"{option} {fifo}: not a regular file")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert not (tmp_path / ".output").exists()


@pytest.mark.timeout(60)
def test_a_device_node_as_output_is_refused_before_any_check(char_device, tmp_path):
    result = run_main(URL, "--output", str(char_device), cwd=tmp_path)

    assert result.returncode == 2
    assert_one_error_line(result.stderr, "not a regular file")
    assert stat.S_ISCHR(os.stat(char_device).st_mode)


# --- 2. the previous report: regular files only, and bounded ---------------


@pytest.mark.timeout(10)
def test_a_fifo_as_previous_report_is_a_note_not_a_hang(fifo):
    previous, note = changes.load_previous(fifo)

    assert previous is None
    assert note == f"previous report {fifo} is unreadable: not a regular file"


@pytest.mark.timeout(10)
def test_a_device_as_previous_report_is_never_read(char_device):
    previous, note = changes.load_previous(char_device)

    assert previous is None
    assert note.endswith("is unreadable: not a regular file")


def test_a_previous_report_over_the_cap_is_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(changes, "MAX_PREVIOUS_BYTES", 1024 * 1024)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (1024 * 1024 + 1))

    previous, note = changes.load_previous(big)

    assert previous is None
    assert note == f"previous report {big} is unreadable: larger than 1 MiB"


def test_the_cap_is_documented_as_64_mib():
    assert changes.MAX_PREVIOUS_BYTES == 64 * 1024 * 1024


# --- 5. output path mistakes, caught up front --------------------------------


PATH_CASES = {
    "parent_is_a_file": (
        ["--markdown", "afile/r.md"],
        "--markdown afile/r.md: ",
    ),
    "grandparent_is_a_file": (
        ["--html", "afile/deeper/r.html"],
        "afile is not a folder",
    ),
    "two_outputs_one_file": (
        ["--output", "r.json", "--markdown", "r.json"],
        "--output and --markdown are the same file",
    ),
    "same_file_spelt_twice": (
        ["--output", "r.json", "--prometheus", "./sub/../r.json"],
        "--output and --prometheus are the same file",
    ),
    "output_is_the_config": (
        ["--config", "c.yaml", "--output", "c.yaml"],
        "--output c.yaml would overwrite the --config file",
    ),
    "output_inside_storage": (
        ["--storage", "state", "--output", "state/r.json"],
        "--output state/r.json is inside --storage state",
    ),
    "storage_is_an_output": (
        ["--storage", "r.json", "--output", "r.json"],
        "--output r.json is also the --storage folder",
    ),
    "storage_is_a_file": (
        ["--storage", "afile"],
        "--storage afile: not a folder",
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(PATH_CASES))
def test_output_path_mistakes_are_one_line_and_exit_2(case, tmp_path):
    args, expected = PATH_CASES[case]
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "sub").mkdir()
    config_text = f"- {URL}\n"
    (tmp_path / "c.yaml").write_text(config_text)
    urls = [] if "--config" in args else [URL]

    result = run_main(*urls, *args, cwd=tmp_path)

    assert result.returncode == 2
    assert_one_error_line(result.stderr, expected)
    assert (tmp_path / "c.yaml").read_text() == config_text
    assert (tmp_path / "afile").read_text() == "a file, not a folder"
    assert not (tmp_path / ".output").exists()
    assert not (tmp_path / "r.json").exists()


@pytest.mark.timeout(60)
def test_an_output_that_is_a_symlink_loop_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "loop").symlink_to("loop")

    result = run_main(URL, "--output", "loop", cwd=tmp_path)

    assert result.returncode == 2
    assert_one_error_line(result.stderr, "--output loop: Too many levels")


# --- 6. flow.log is bounded ------------------------------------------------


def test_an_oversized_log_is_rotated_and_its_handlers_keep_writing(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(pipeline, "MAX_LOG_BYTES", 1000)
    log_path = tmp_path / pipeline.LOG_FILE_NAME
    handler = logging.FileHandler(log_path)  # append mode, as dotflow's
    logger = logging.getLogger("test_paths_and_config.rotation")
    logger.addHandler(handler)
    try:
        for number in range(100):
            logger.warning("line %d of an old run", number)
        pipeline.rotate_log(str(tmp_path))
        logger.warning("first line after rotation")
    finally:
        logger.removeHandler(handler)
        handler.close()

    old = (tmp_path / "flow.log.1").read_text()
    assert "line 99 of an old run" in old
    assert log_path.read_text() == "first line after rotation\n"


def test_a_small_log_is_left_alone(tmp_path):
    log_path = tmp_path / pipeline.LOG_FILE_NAME
    log_path.write_text("a few lines\n")

    pipeline.rotate_log(str(tmp_path))

    assert log_path.read_text() == "a few lines\n"
    assert not (tmp_path / "flow.log.1").exists()


# --- 3 and 7. config mistakes ----------------------------------------------


# (the value in the config, the environment's HC_TEST_TOKEN)
HEADER_CASES = {
    "crlf_from_env": ("${HC_TEST_TOKEN}", "s3cret\r\nX-Evil: 1"),
    "lf_from_env": ("Bearer ${HC_TEST_TOKEN}", "s3cret\nX-Evil: 1"),
    "escape_from_env": ("${HC_TEST_TOKEN}", "s3cret\x1b[2J"),
    "nul_in_file": ("s3cret\x00", "unused"),
    "cr_in_file": ("s3cret\r", "unused"),
    "c1_control_from_env": ("${HC_TEST_TOKEN}", "s3cret\u0085v"),
    "line_separator_from_env": ("${HC_TEST_TOKEN}", "s3cret\u2028v"),
    "beyond_latin1_from_env": ("${HC_TEST_TOKEN}", "s3cret\u20acv"),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_a_header_value_with_control_characters_is_refused_unshown(case, monkeypatch):
    value, environment_value = HEADER_CASES[case]
    monkeypatch.setenv("HC_TEST_TOKEN", environment_value)
    entry = {"url": URL, "name": "orders", "headers": {"X-Token": value}}

    with pytest.raises(config.ConfigError) as raised:
        config.build_endpoints([entry], defaults={})

    message = str(raised.value)
    assert message.startswith("endpoint 'orders': headers: header 'X-Token'")
    assert "control character" in message
    assert "s3cret" not in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["X Token", "X-Token:", "", "X\r\nEvil", "Ünï"])
def test_a_header_name_that_is_not_a_token_is_refused(name):
    entry = {"url": URL, "headers": {name: "value-never-shown"}}

    with pytest.raises(config.ConfigError, match="is not an HTTP token") as raised:
        config.build_endpoints([entry], defaults={})

    assert "value-never-shown" not in str(raised.value)


def test_a_bad_header_is_one_line_exit_2_without_the_value(tmp_path):
    (tmp_path / "c.yaml").write_text(
        f"- {{url: '{URL}', name: api, headers: {{X-Key: '${{HC_TEST_TOKEN}}'}}}}\n"
    )
    env = {**os.environ, "HC_TEST_TOKEN": "hunter2\r\nHost: evil"}

    result = run_main("--config", "c.yaml", cwd=tmp_path, timeout_s=60, env=env)

    assert result.returncode == 2
    assert_one_error_line(result.stderr, "endpoint 'api': headers: header 'X-Key'")
    assert "hunter2" not in result.stderr


def test_ordinary_headers_still_pass():
    entry = {"url": URL, "headers": {"Authorization": "Bearer a.b-c", "X-A": "1\t2"}}

    (endpoint,) = config.build_endpoints([entry], defaults={})

    assert endpoint.headers == entry["headers"]


CONFIG_CASES = {
    "empty_status_list": (
        f"- {{url: '{URL}', expect: {{status: []}}}}\n",
        "endpoint 1: expect.status: list at least one status",
    ),
    "timeout_true": (
        f"- {{url: '{URL}', timeout: true}}\n",
        "endpoint 1: timeout: Input should be a valid number",
    ),
    "timeout_string": (
        f"- {{url: '{URL}', timeout: '5'}}\n",
        "endpoint 1: timeout: Input should be a valid number",
    ),
    "retries_true": (
        f"- {{url: '{URL}', retries: true}}\n",
        "endpoint 1: retries: Input should be a valid integer",
    ),
    "follow_redirects_string": (
        f"- {{url: '{URL}', follow_redirects: 'no'}}\n",
        "endpoint 1: follow_redirects: Input should be a valid boolean",
    ),
    "endpoints_a_number": ("endpoints: 5\n", "c.yaml: endpoints must be a list"),
    "endpoints_a_mapping": ("endpoints: {}\n", "c.yaml: endpoints must be a list"),
    "defaults_typo": (
        f"defaults: {{timeot: 3}}\nendpoints: ['{URL}']\n",
        "c.yaml: defaults: timeot: unknown key",
    ),
    "defaults_bad_value": (
        f"defaults: {{timeout: -1}}\nendpoints: ['{URL}']\n",
        "c.yaml: defaults: timeout: ",
    ),
    "duplicate_yaml_key": (
        f"- url: '{URL}'\n  timeout: 2\n  timeout: 3\n",
        "c.yaml: invalid YAML at line 3: duplicate key 'timeout'",
    ),
    "duplicate_top_level_key": (
        f"endpoints: ['{URL}']\nendpoints: ['{URL}a']\n",
        "duplicate key 'endpoints'",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_loose_config_values_are_errors(case, tmp_path):
    content, expected = CONFIG_CASES[case]
    path = tmp_path / "c.yaml"
    path.write_text(content)

    with pytest.raises(config.ConfigError) as raised:
        config.load_config_file(str(path))

    assert expected in str(raised.value)
    assert str(raised.value).count("\n") == 0


def test_a_duplicate_json_key_is_an_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(f'[{{"url": "{URL}", "retries": 1, "retries": 3}}]')

    with pytest.raises(config.ConfigError, match="c.json: duplicate key 'retries'"):
        config.load_config_file(str(path))


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        f"- &base {{url: '{URL}a', timeout: 2}}\n"
        f"- {{<<: *base, url: '{URL}b', timeout: 3}}\n"
    )

    first, second = config.load_config_file(str(path))

    assert (first.timeout_s, second.timeout_s) == (2, 3)


@pytest.mark.parametrize("value", ["2", "2.5"])
def test_yaml_numbers_are_still_numbers(value, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"- {{url: '{URL}', timeout: {value}, retries: 3}}\n")

    (endpoint,) = config.load_config_file(str(path))

    assert endpoint.timeout_s == float(value)
    assert endpoint.attempts == 3


def test_the_same_url_twice_on_the_command_line_says_so(tmp_path):
    result = run_main(URL, URL, cwd=tmp_path)

    assert result.returncode == 2
    assert_one_error_line(result.stderr, "the same URL twice?")


# --- 8. --version ------------------------------------------------------------


def test_version_names_the_tool(tmp_path):
    result = run_main("--version", cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout.startswith("health-check 0.")


def assert_one_error_line(stderr: str, expected: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("health-check: error: ")
    assert expected in lines[0]
