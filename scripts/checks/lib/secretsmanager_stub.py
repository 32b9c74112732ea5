#!/usr/bin/env python3
"""A stand-in for the one Secrets Manager call `terraform plan` of an environment makes
(GetRandomPassword, from the ephemeral aws_secretsmanager_random_password): answers it on
127.0.0.1:<port> and refuses everything else, so a plan test cannot quietly depend on AWS.

  secretsmanager_stub.py PORTFILE   binds a free port, writes it to PORTFILE, serves until killed
"""
import json
import secrets
import string
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)) or 0)
        target = self.headers.get("X-Amz-Target", "")
        if target == "secretsmanager.GetRandomPassword":
            req = json.loads(body or b"{}")
            n = int(req.get("PasswordLength", 32))
            alphabet = string.ascii_letters + string.digits
            out = json.dumps({"RandomPassword": "".join(secrets.choice(alphabet) for _ in range(n))}).encode()
            self.send_response(200)
        else:
            out = json.dumps({"__type": "AccessDeniedException", "message": f"stub serves GetRandomPassword only, not {target}"}).encode()
            self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    srv = HTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(srv.server_address[1]))
    srv.serve_forever()
