#!/usr/bin/env python3
"""A minimal OTLP/HTTP receiver for the example's CTest run: answers every POST with 200 and an
empty protobuf body, and logs "<path> <content-type> <bytes>" per request.

    otlp_receiver.py PORT_FILE LOG_FILE

Listens on 127.0.0.1 on a free port, writes the port to PORT_FILE, serves until killed.
"""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with open(sys.argv[2], "a", encoding="utf-8") as log:
            log.write(f"{self.path} {self.headers.get('Content-Type', '')} {len(body)}\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402  (rename only once the port is written: the wrapper polls for the file)

os.replace(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
