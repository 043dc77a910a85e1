"""An HTTP origin for one file that cuts every response short: `python flaky_origin.py FILE PORT MAX_BYTES [--stall]`.

Range and If-Range work as in nginx (the ETag comes from mtime and size). After MAX_BYTES
of a body it closes the connection or, with --stall, keeps it open and sends nothing more.
"""

import argparse
import os
import re
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RANGE = re.compile(r"bytes=(\d+)-")


class FlakyHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        stat = os.stat(self.server.path)
        size = stat.st_size
        etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
        last_modified = formatdate(stat.st_mtime, usegmt=True)
        wanted = RANGE.fullmatch(self.headers.get("Range", ""))
        # If-Range: the part if the client has this version, else the whole file.
        start = int(wanted[1]) if wanted and self.headers.get("If-Range", etag) in (etag, last_modified) else None
        if start is not None and start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if start is None:
            self.send_response(200)
            start = 0
        else:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.end_headers()
        with open(self.server.path, "rb") as file:
            file.seek(start)
            self.wfile.write(file.read(self.server.max_bytes))
        self.wfile.flush()
        if self.server.stall:
            threading.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("port", type=int)
    parser.add_argument("max_bytes", type=int)
    parser.add_argument("--stall", action="store_true", help="keep the connection open instead of closing it")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), FlakyHandler)
    server.daemon_threads = True
    server.path, server.max_bytes, server.stall = args.path, args.max_bytes, args.stall
    server.serve_forever()


if __name__ == "__main__":
    main()
