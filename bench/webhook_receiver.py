"""A webhook receiver for bench/webhooks.sh: answers every POST with 204 on each port
given, as fast as Python's threaded HTTP server can; counts nothing (the database's
delivery rows are the record)."""
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


servers = [ThreadingHTTPServer(("127.0.0.1", int(port)), Hook) for port in sys.argv[1:]]
for server in servers[1:]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
servers[0].serve_forever()
