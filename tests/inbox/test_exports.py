"""The export writer (R23) streams: memory does not grow with the number of messages. The 100k-message run is
`python -m bench.export`; this is the same measurement at a size a test run can afford, on both databases."""

from __future__ import annotations

from bench.export import measure, seed_practice
from gateway.keys import CTX
from inbox import exports


async def test_r23_export_memory_stays_flat_as_messages_grow(client, tmp_path):
    ctx = client.server.app[CTX]
    small = await seed_practice(ctx, 1_000, conversations=4)
    large = await seed_practice(ctx, 6_000, conversations=4)  # one thread of 3,000 messages
    peak_small, _, _ = await measure(ctx, small, tmp_path / "exports")
    peak_large, _, _ = await measure(ctx, large, tmp_path / "exports")
    # Six times the messages, (about) the same peak: pages of messages, never the whole practice.
    assert peak_large < peak_small * 1.5 + 512 * 1024, (peak_small, peak_large)
    # And less than the bodies alone would take if they were all held at once (6,000 x ~600 characters).
    assert peak_large < 6_000 * 600, peak_large
    assert exports.MESSAGE_PAGE < 3_000  # the long thread really spans several pages
