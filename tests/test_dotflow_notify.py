"""dotflow's own notify providers, plugged into our workflows' Config, locally.

They are not wired to an option: they report task states on every run, not
changes. These tests show where they plug in and why they are not alerts.
"""

import pytest
from dotflow import Config
from dotflow.core.types.status import TypeStatus
from dotflow.providers import NotifyDiscord, NotifyTelegram

from health_check import config, pipeline

pytestmark = [
    pytest.mark.usefixtures("no_leftover_server_threads"),
    pytest.mark.timeout(60),
]


def _config_with(notify, storage_dir) -> Config:
    plain = pipeline.make_config(str(storage_dir))
    return Config(storage=plain.storage, log=plain.log, notify=notify)


def _broken_report_run(tmp_path, dotflow_config: Config) -> None:
    """The report workflow with a folder where the report file should go."""
    endpoints = config.load_endpoints(["http://127.0.0.1:9/"], None)
    (tmp_path / "taken").mkdir()
    with pytest.raises(IsADirectoryError):
        pipeline.run_report(
            endpoints, [], 0.1, {"json": str(tmp_path / "taken")}, dotflow_config
        )


def test_discord_hears_that_the_report_workflow_broke(webhook_server, tmp_path):
    notify = NotifyDiscord(
        webhook_url=webhook_server.url("/api/webhooks/1/token"),
        notification_type=TypeStatus.FAILED,
    )

    _broken_report_run(tmp_path, _config_with(notify, tmp_path / ".output"))

    (body,) = webhook_server.bodies
    (embed,) = body["embeds"]
    assert "Failed" in embed["title"]
    assert "IsADirectoryError" in embed["fields"][0]["value"]


def test_telegram_reaches_a_local_receiver_only_through_its_class_url(
    webhook_server, tmp_path
):
    notify = NotifyTelegram(
        token="123:token", chat_id=42, notification_type=TypeStatus.FAILED
    )
    # The Bot API address is a class attribute; an instance attribute
    # redirects this one notifier to the loopback receiver.
    notify.API_URL = webhook_server.url("/bot{token}/sendMessage")

    _broken_report_run(tmp_path, _config_with(notify, tmp_path / ".output"))

    (received,) = webhook_server.received
    assert received.path == "/bot123:token/sendMessage"
    assert received.json["chat_id"] == 42


def test_they_post_on_every_run_while_an_endpoint_stays_down(
    webhook_server, refused_port, tmp_path
):
    notify = NotifyDiscord(
        webhook_url=webhook_server.url("/hook"), notification_type=TypeStatus.FAILED
    )
    dotflow_config = _config_with(notify, tmp_path / ".output")
    down = config.load_endpoints([f"http://127.0.0.1:{refused_port}/"], None)

    pipeline.run_checks(down, dotflow_config)
    after_first_run = len(webhook_server.received)
    pipeline.run_checks(down, dotflow_config)

    # Our alerts would send one "down" in total; dotflow's notifier repeats
    # itself each run (in the check worker and again in the parent).
    assert after_first_run >= 1
    assert len(webhook_server.received) == 2 * after_first_run
