"""Stats RPCs carry deltas beside SPDK's totals, through SPDK's client and our own."""

from __future__ import annotations

import time


def test_repeated_spdk_rpc_runs_see_deltas_since_the_last_run(tgt) -> None:  # type: ignore[no-untyped-def]
    app = tgt()
    first = app.call("thread_get_stats")
    time.sleep(0.2)
    second = app.call("thread_get_stats")
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert 0 < second["interval_ticks"] < first["interval_ticks"] + 10**12
    app_thread = next(t for t in second["threads"] if t["name"] == "app_thread")
    old = next(t for t in first["threads"] if t["name"] == "app_thread")
    assert app_thread["delta"]["busy"] == app_thread["busy"] - old["busy"]
    assert set(app_thread) >= {"name", "id", "cpumask", "busy", "idle", "delta"}


def test_a_named_window_and_reactor_modes(tgt) -> None:  # type: ignore[no-untyped-def]
    from spdkpy.rpc import RpcClient

    app = tgt()
    with RpcClient(app.address) as client:
        client.call("framework_get_reactors", {"window": "mine"})
        time.sleep(0.2)
        result = client.call("framework_get_reactors", {"window": "mine"})
        assert isinstance(result, dict)
        assert result["interval_ticks"] > 0
        for reactor in result["reactors"]:
            assert reactor["mode"] in ("sleeping", "spinning")
            assert reactor["mode"] == "sleeping"  # an idle app: nothing keeps a reactor awake
            assert reactor["awake_by"] == []
            assert set(reactor["delta"]) == {"busy", "idle", "sleeps", "events_run"}
