"""Opens N event streams on one gevent client, then reports how fast one event reached all of them."""

import gevent.monkey

gevent.monkey.patch_all()

import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

import gevent  # noqa: E402


def main(streams, port, token, download_id):
    connected, received = [], []

    def stream():
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            f"GET /api/downloads/{download_id}/events HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        buffer, opened = b"", False
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
            if not opened and b"event: status" in buffer:
                opened, buffer = True, b""
                connected.append(time.monotonic())
            elif opened and b'"paused"' in buffer:
                received.append(time.monotonic())
                sock.close()
                return

    greenlets = [gevent.spawn(stream) for _ in range(streams)]
    deadline = time.monotonic() + 120
    while len(connected) < streams and time.monotonic() < deadline:
        gevent.sleep(0.1)
    print(json.dumps({"phase": "connected", "streams": len(connected)}), flush=True)
    sys.stdin.readline()  # the harness reads the server's memory, then says go
    sent = time.monotonic()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/downloads/{download_id}/pause",
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    urllib.request.urlopen(request).read()
    while len(received) < len(connected) and time.monotonic() - sent < 10:
        gevent.sleep(0.005)
    print(
        json.dumps(
            {
                "phase": "delivered",
                "received": len(received),
                "slowest_seconds": round(max(received) - sent, 3) if received else None,
            }
        ),
        flush=True,
    )
    gevent.killall(greenlets, block=False)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
