"""SIGTERM drains the ledger's write queue before the process goes (a plain process: the actor
built on the main thread, its event loop on another thread, as a host process would run it)."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, sys, threading
    from runtime.finops.ledger import LedgerActor
    from runtime.finops.ledger_store import FinalRow

    actor = LedgerActor(sys.argv[1])  # main thread: installs the SIGTERM handler
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def row(i):
        return FinalRow(request_id=f"r{i}", user_id="u", created_at=1_767_225_660.0, cost_usd=0.001)

    asyncio.run_coroutine_threadsafe(actor.record(row(0)), loop).result()  # open the store
    for i in range(1, 200):  # queued, not awaited
        asyncio.run_coroutine_threadsafe(actor.record(row(i)), loop)
    os.kill(os.getpid(), signal.SIGTERM)
    signal.pause()  # the default action, chained after the drain, ends the process
    """
)


def test_sigterm_commits_every_queued_write_then_terminates(tmp_path):
    db_path = str(tmp_path / "ledger.sqlite3")
    done = subprocess.run([sys.executable, "-c", SCRIPT, db_path], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGTERM, done.stderr.decode()[-2000:]
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("SELECT COUNT(*), SUM(estimated_cost) FROM agent_token_usage").fetchone() == (200, 200_000_000)
    finally:
        db.close()
