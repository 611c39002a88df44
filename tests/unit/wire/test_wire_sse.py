"""SSE decoding: the WHATWG line rules, and that any chunking of a stream decodes the same."""
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.wire.sse import SSEDecoder, SSEEvent

# An OpenRouter-shaped stream: comments, multi-byte UTF-8, named events, ids, multi-line data.
RECORDED = (
    ": OPENROUTER PROCESSING\n\n"
    'data: {"choices":[{"delta":{"content":"Grüße 👋"}}]}\n\n'
    "event: message_delta\r\n"
    "id: 7\r\n"
    "data: line one\r\n"
    "data:line two\r\n"
    "\r\n"
    ": keep-alive\r"
    "data: after CR\r\r"
    "retry: 3000\n"
    "data: last\n\n"
).encode()
EXPECTED = [
    SSEEvent(None, '{"choices":[{"delta":{"content":"Grüße 👋"}}]}', None),
    SSEEvent("message_delta", "line one\nline two", "7"),
    SSEEvent(None, "after CR", "7"),
    SSEEvent(None, "last", "7"),
]


def decode(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


def test_whole_stream_in_one_chunk():
    assert decode([RECORDED]) == EXPECTED


def test_byte_by_byte():
    assert decode([bytes([b]) for b in RECORDED]) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(RECORDED)), max_size=25))
def test_any_split_decodes_the_same(cuts):
    points = [0, *sorted(cuts), len(RECORDED)]
    assert decode([RECORDED[a:b] for a, b in zip(points, points[1:])]) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                            blacklist_characters="\r\n\0"), max_size=12),
             min_size=1, max_size=4),
    st.sampled_from(["\n", "\r", "\r\n"]),
    st.integers(min_value=0, max_value=400),
)
def test_every_line_ending_and_split_gives_the_same_data(lines, eol, cut):
    raw = ("".join(f"data: {line}{eol}" for line in lines) + eol).encode()
    cut = min(cut, len(raw))
    assert decode([raw[:cut], raw[cut:]]) == [SSEEvent(None, "\n".join(lines), None)]


def test_crlf_split_across_chunks_is_one_line_end():
    # "data: a\r" | "\ndata: b\r\n\r\n": the LF must not end an (empty) line and dispatch early.
    assert decode([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [SSEEvent(None, "a\nb")]


def test_utf8_character_split_across_chunks():
    raw = "data: 日本\n\n".encode()
    assert decode([raw[:7], raw[7:]]) == [SSEEvent(None, "日本")]


def test_bom_is_stripped_only_at_start():
    assert decode([b"\xef\xbb", b"\xbfdata: x\n\n"]) == [SSEEvent(None, "x")]
    assert decode(["data: \ufeffy\n\n".encode()]) == [SSEEvent(None, "\ufeffy")]


def test_last_event_without_blank_line_is_emitted_by_close():
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"done": true}') == []
    assert decoder.close() == [SSEEvent(None, '{"done": true}')]


def test_field_rules():
    raw = (
        b"event: ping\n\n"  # an event without data is not dispatched...
        b"data\n\n"  # ...but a bare `data` field is an empty data line
        b"data:  two spaces\n"
        b"unknown: ignored\n"
        b"id: a\0b\n"  # ids containing NUL are ignored
        b"\n"
    )
    assert decode([raw]) == [SSEEvent(None, ""), SSEEvent(None, " two spaces")]


def test_event_name_resets_after_dispatch():
    raw = b"event: error\ndata: 1\n\ndata: 2\n\n"
    assert [e.event for e in decode([raw])] == ["error", None]
