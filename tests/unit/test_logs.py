"""Redaction: no provider key survives into a log line."""
import io
import json

from runtime.logs import REDACTED, Redactor, configure_logging, configured_secrets, get_logger


def test_patterns_headers_and_configured_values_are_redacted():
    r = Redactor(["my-very-own-operator-secret"])
    event = r(None, "info", {
        "event": "upstream_error",
        "message": "Incorrect API key provided: sk-proj-abcdefghijklmnop1234",
        "headers": {"Authorization": "Bearer abc", "x-goog-api-key": "AIzaSyA-1234567890abcdefghijk", "accept": "json"},
        "nested": ["gsk_abcdefghijklmnop", "sk-ant-api03-abcdefghijkl", "my-very-own-operator-secret!"],
    })
    dumped = json.dumps(event)
    for secret in ("sk-proj-abcdefghijklmnop1234", "Bearer abc", "AIzaSyA", "gsk_abcdefghijklmnop",
                   "sk-ant-api03", "my-very-own-operator-secret"):
        assert secret not in dumped
    assert event["headers"]["accept"] == "json" and event["headers"]["Authorization"] == REDACTED


def test_configured_secrets_come_from_key_variables_only():
    env = {"OPENAI_API_KEY": "sk-live-123456", "GROQ_API_KEY": "x", "HOME": "/root/secretish"}
    assert configured_secrets(env) == ("sk-live-123456",)


def test_json_lines_end_to_end():
    out = io.StringIO()
    configure_logging(stream=out, secrets=["canary-key-value-42"])
    get_logger().info("request", request_id="req_1", detail="echo canary-key-value-42")
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["request_id"] == "req_1" and "canary-key-value-42" not in out.getvalue()
