"""moto's server, extended for this project's tests.

Run by `scripts/env up` as `python tests/moto/server.py --host 127.0.0.1 --port 55000`.

Extensions (test code; each one is documented where it is defined):
- per-test AWS accounts: an access key id made of exactly 12 digits is taken as the account id,
  so parallel tests isolate themselves by choosing a random 12-digit access key
  (moto otherwise maps every unknown key to its default account);
- the ECS service-deployment lifecycle plugin (`ecs_lifecycle`), if present.
"""

import argparse
import importlib
import os
import re
import sys

from moto.core.responses import BaseResponse

# SigV4: "AWS4-HMAC-SHA256 Credential=<access key id>/<date>/<region>/<service>/aws4_request, ..."
_NUMERIC_KEY = re.compile(r"Credential=(\d{12})/")
_original_get_current_account = BaseResponse.get_current_account


def _account_from_numeric_key(self):
    match = _NUMERIC_KEY.search(self.headers.get("Authorization", "") or "")
    if match:
        return match.group(1)
    return _original_get_current_account(self)


BaseResponse.get_current_account = _account_from_numeric_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=55000)
    args = parser.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        plugin = importlib.import_module("ecs_lifecycle")
    except ModuleNotFoundError:
        plugin = None
    if plugin is not None:
        plugin.install()

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    print(f"moto listening on http://{args.host}:{args.port}", flush=True)
    try:
        server._thread.join()  # noqa: SLF001 - the server thread runs until killed
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
