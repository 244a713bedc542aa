"""The gateway's command line: `start` runs `serve` in the background with the same options."""

from __future__ import annotations

from serving.gateway import cli

# every `serve` option away from its default (the keys file is only read when serving)
GIVEN = [
    "--host=127.0.0.2", "--port=8111", "--upstream=http://triton:8000", "--metrics-port=8113",
    "--metrics-host=127.0.0.3", "--keys-file=/etc/keys.json", "--log-root=/tmp/gw-log",
    "--no-log", "--log-queue-rows=7", "--max-body-bytes=9", "--max-string-bytes=11",
    "--max-connections=13", "--upstream-timeout=2.5", "--poll-s=30", "--swap-grace-s=4.5",
    "--shadow-share=0.25", "--shadow-queue=17", "--shadow-concurrency=3",
]  # fmt: skip


def test_start_hands_serve_every_option_it_was_given():
    started = cli._parser().parse_args(["start", *GIVEN])
    served = cli._parser().parse_args(["serve", *cli._serve_options(started)])
    default = cli._parser().parse_args(["serve"])
    options = {k: v for k, v in vars(started).items() if k not in ("command", "timeout")}
    assert options == {k: v for k, v in vars(served).items() if k != "command"}
    # the test gives every option: one left at its default here would not prove it is passed
    # (KServe's two are folded into --upstream; the run dir and log level are start's own)
    unchanged = {k for k, v in vars(default).items() if k != "command" and options[k] == v}
    assert unchanged <= {"predictor_host", "model_name", "run_dir", "log_level"}, unchanged
