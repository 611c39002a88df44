"""Redaction: no provider key survives into a log line."""
import io
import json

from hypothesis import given, strategies as st

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


SECRET = "operator-secret-77"
_pieces = st.sampled_from(["", " ", "\t", "-", "x", "sk-", "abcdefgh", "12345678", "gsk_", "Bearer", "AIza",
                           "ABCDEFGHIJKLMNOPQRSTUV", "operator-", "secret-77", SECRET, "\x00", "é"])
_strings = st.lists(_pieces, max_size=6).map("".join)
_values = st.one_of(_strings, st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                    st.lists(_strings, max_size=2), st.dictionaries(_strings, _strings, max_size=2))
_names = st.one_of(st.sampled_from(["event", "path", "Authorization", "x-api-key", "API_KEY", "detail"]), _strings)


@given(st.dictionaries(_names, _values, max_size=6))
def test_the_flat_fast_path_redacts_exactly_as_the_full_walk(event):
    r = Redactor([SECRET])
    assert r(None, "info", dict(event)) == {k: r.value(v, k) for k, v in event.items()}


def test_configured_secrets_come_from_key_variables_only():
    env = {"OPENAI_API_KEY": "sk-live-123456", "GROQ_API_KEY": "x", "HOME": "/root/secretish"}
    assert configured_secrets(env) == ("sk-live-123456",)


def test_json_lines_end_to_end():
    out = io.StringIO()
    configure_logging(stream=out, secrets=["canary-key-value-42"])
    get_logger().info("request", request_id="req_1", detail="echo canary-key-value-42")
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["request_id"] == "req_1" and "canary-key-value-42" not in out.getvalue()


def test_a_line_buffer_holds_info_lines_and_writes_them_in_order_with_the_first_urgent_one():
    from runtime.logs import LineBuffer

    out = io.StringIO()
    buffer = LineBuffer(out, max_bytes=1000)
    buffer.add("a\n")
    buffer.add("b\n")
    assert out.getvalue() == ""  # held
    buffer.add("boom\n", urgent=True)
    assert out.getvalue() == "a\nb\nboom\n"
    buffer.add("c\n")
    buffer.flush()
    assert out.getvalue().endswith("boom\nc\n")
    buffer.add("x" * 1000 + "\n")  # past max_bytes: written at once
    assert out.getvalue().endswith("x\n")


def test_the_flusher_flushes_each_interval_and_once_more_when_stopped():
    from runtime.logs import LineBuffer, flush_every

    out = io.StringIO()
    buffer = LineBuffer(out)
    seen: list[str] = []

    def wait(every_s: float) -> bool:  # the injected wait: one tick, a line, then stop
        seen.append(out.getvalue())
        if len(seen) == 1:
            buffer.add("first\n")
            return False
        buffer.add("last\n")
        return True

    flush_every(buffer, 0.2, wait).join(5)
    assert seen == ["", "first\n"] and out.getvalue() == "first\nlast\n"


def test_buffered_logging_holds_info_lines_but_not_errors():
    from runtime.logs import flush_logs

    out = io.StringIO()
    try:
        configure_logging(stream=out, secrets=["canary-key-buffered-7"], buffered=True, every_s=3600)
        get_logger().info("request", request_id="req_2", detail="canary-key-buffered-7")
        assert out.getvalue() == ""
        get_logger().error("upstream_failed", request_id="req_3")
        first, second = [json.loads(line) for line in out.getvalue().splitlines()]
        assert (first["request_id"], second["request_id"]) == ("req_2", "req_3")
        assert "canary-key-buffered-7" not in out.getvalue()
        get_logger().info("request", request_id="req_4")
        flush_logs()
        assert json.loads(out.getvalue().splitlines()[-1])["request_id"] == "req_4"
    finally:
        configure_logging(stream=io.StringIO())
