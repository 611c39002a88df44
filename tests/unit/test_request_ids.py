"""Request ids are UUIDv7: valid RFC 9562 ids whose order follows their time (the ledger's
primary-key B-trees then grow at their right edge)."""
import uuid

from hypothesis import given, strategies as st

from providers.request_ids import new_request_id, uuid7_hex
from providers.types import ChatRequest
from runtime import request_log

MS = 1_000_000


@given(st.integers(0, (1 << 48) - 1), st.integers(0, (1 << 80) - 1))
def test_a_uuid7_carries_its_millisecond_version_and_variant(ms, bits):
    parsed = uuid.UUID(hex=uuid7_hex(ms * MS + 999_999, bits))
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == ms


@given(st.integers(0, (1 << 47)), st.integers(1, 1 << 40), st.integers(0, (1 << 80) - 1),
       st.integers(0, (1 << 80) - 1))
def test_a_later_millisecond_sorts_later_whatever_the_random_bits(ms, later_by, bits_a, bits_b):
    assert uuid7_hex(ms * MS, bits_a) < uuid7_hex((ms + later_by) * MS, bits_b)


def test_ids_follow_the_injected_clock_and_differ_within_one_millisecond():
    times = iter([1_700_000_000_000 * MS, 1_700_000_000_000 * MS, 1_700_000_000_001 * MS])
    first, second, third = (new_request_id(lambda: next(times)) for _ in range(3))
    assert first.startswith("req_") and len(first) == 36
    assert first != second
    assert max(first, second) < third
    assert uuid.UUID(hex=first[4:]).int >> 80 == 1_700_000_000_000


def test_the_gateway_and_the_http_edge_mint_the_same_kind_of_id():
    for rid in (ChatRequest(messages=()).request_id, request_log.accept_request_id(None)):
        assert uuid.UUID(hex=rid.removeprefix("req_")).version == 7
