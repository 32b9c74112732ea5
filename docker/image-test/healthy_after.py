"""Wait for a container to turn healthy; print the milliseconds from its start to the end of its
first passing HEALTHCHECK probe.

Usage: healthy_after.py CONTAINER TIMEOUT_SECONDS

Docker keeps only the last 5 probes in State.Health.Log, so this polls `docker inspect` faster
than the probe interval and remembers every probe it saw. The figure uses Docker's own
timestamps (State.StartedAt, the probe's End), so polling latency is not counted.
"""

import json
import re
import subprocess
import sys
import time
from datetime import datetime


def ts(value: str) -> datetime:
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        raise ValueError(f"unexpected timestamp {value!r}")
    base, frac, tz = m.groups()
    tz = "+00:00" if tz == "Z" else tz
    return datetime.fromisoformat(f"{base}.{(frac or '0').ljust(6, '0')[:6]}{tz}")


def main() -> int:
    name, timeout = sys.argv[1], float(sys.argv[2])
    deadline = time.monotonic() + timeout
    probes = {}
    while True:
        out = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True)
        state = json.loads(out.stdout)[0]["State"]
        for p in (state.get("Health") or {}).get("Log") or []:
            probes[p["Start"]] = p
        if not state["Running"]:
            print(f"container {name} stopped (exit {state['ExitCode']})", file=sys.stderr)
            return 1
        passed = sorted((ts(p["End"]) for p in probes.values() if p["ExitCode"] == 0))
        if state["Health"]["Status"] == "healthy" and passed:
            print(int((passed[0] - ts(state["StartedAt"])).total_seconds() * 1000))
            return 0
        if time.monotonic() > deadline:
            last = [p.get("Output", "").strip() for p in probes.values()][-1:]
            print(f"container {name} not healthy after {timeout:.0f} s; last probe: {last}", file=sys.stderr)
            return 1
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main())
