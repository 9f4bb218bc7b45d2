"""The sock methods through SPDK's client: ``sock_impl_get_options -i ssl`` reports SPDK's keys
and, beside them, the TLS certificate options in effect and the PSK identity, never the PSK.
"""

from __future__ import annotations

import json
from pathlib import Path

SPDK_KEYS = {
    "recv_buf_size",
    "send_buf_size",
    "enable_recv_pipe",
    "enable_quickack",
    "enable_placement_id",
    "enable_zerocopy_send_server",
    "enable_zerocopy_send_client",
    "zerocopy_threshold",
    "tls_version",
    "enable_ktls",
}
PSK_KEY = "00112233445566778899aabbccddeeff"


def test_ssl_options_report_no_certificates_by_default(tgt) -> None:
    app = tgt()
    posix = app.call("sock_impl_get_options", "-i", "posix")
    assert set(posix) == SPDK_KEYS
    ssl = app.call("sock_impl_get_options", "-i", "ssl")
    assert set(ssl) == SPDK_KEYS | {"certfile", "keyfile", "cafile", "verify_peer"}
    assert ssl["certfile"] is None
    assert ssl["keyfile"] is None
    assert ssl["cafile"] is None
    assert ssl["verify_peer"] is True
    assert ssl["recv_buf_size"] == 4096


def test_ssl_options_in_effect_from_a_config(tgt) -> None:
    config = {
        "subsystems": [
            {
                "subsystem": "sock",
                "config": [
                    {
                        "method": "sock_impl_set_options",
                        "params": {
                            "impl_name": "ssl",
                            "tls_version": 13,
                            "certfile": "/etc/spdkpy/server.pem",
                            "keyfile": "/etc/spdkpy/server.key",
                            "psk_key": PSK_KEY,
                            "psk_identity": "psk.spdk.io",
                        },
                    }
                ],
            }
        ]
    }
    path = Path(tgt.path("sock.json"))
    path.write_text(json.dumps(config))
    app = tgt("-c", str(path))
    run = app.rpc("sock_impl_get_options", "-i", "ssl")
    ssl = run.result()
    assert ssl["tls_version"] == 13
    assert ssl["certfile"] == "/etc/spdkpy/server.pem"
    assert ssl["keyfile"] == "/etc/spdkpy/server.key"
    assert ssl["cafile"] is None
    assert ssl["psk_identity"] == "psk.spdk.io"
    assert "psk_key" not in ssl
    assert PSK_KEY not in run.stdout  # the key is write-only
    assert "certfile" not in app.call("sock_impl_get_options", "-i", "posix")
