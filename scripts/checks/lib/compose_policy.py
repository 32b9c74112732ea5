"""Policy of docker-compose.production.yml, checked on `docker compose config --format json`.

Reads the resolved compose model on stdin; prints every violation and exits 1 if there is one.
"""

import json
import sys

AGENT_KINDS = {"scaffold", "validation", "e2e", "integration", "deployment"}
PLATFORM = {"migrate", "orchestrator"} | {f"agent-{k}" for k in AGENT_KINDS}
# The optional `monitoring` profile (checked with --monitoring on `--profile monitoring config`).
MONITORING = {"prometheus", "grafana"}


def main() -> int:
    model = json.load(sys.stdin)
    services = model["services"]
    errors = []
    monitoring = "--monitoring" in sys.argv[1:]

    def need(cond, msg):
        if not cond:
            errors.append(msg)

    expected = PLATFORM | {"postgres", "redis"} | (MONITORING if monitoring else set())
    need(set(services) == expected,
         f"services must be {sorted(expected)}; got {sorted(services)}")
    for name in MONITORING & set(services):
        need(services[name].get("profiles") == ["monitoring"],
             f"{name} belongs to the optional `monitoring` profile only")
    images = {services[s].get("image") for s in PLATFORM if s in services}
    need(len(images) == 1, f"platform services must share ONE image, got {images}")
    need(len(model.get("networks", {})) == 1, "exactly one (private) network expected")

    for name, svc in services.items():
        published = [p for p in svc.get("ports", []) if p.get("published")]
        if name == "orchestrator":
            need(len(published) == 1, "orchestrator must publish exactly one port")
        elif name == "grafana":
            need(len(published) == 1 and published[0].get("host_ip") == "127.0.0.1",
                 "grafana publishes one port, on 127.0.0.1 only")
        else:
            need(not published, f"{name} must not publish ports (only the orchestrator does)")
        need(svc.get("read_only") is True, f"{name}: read_only root filesystem expected")
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        need("memory" in limits and "cpus" in limits, f"{name}: memory and CPU limits expected")
        hc = svc.get("healthcheck", {})
        if name == "migrate":
            need(svc.get("restart") in (None, "no"), "migrate is a one-shot: restart must be 'no'")
            deps = svc.get("depends_on", {})
            need(deps.get("postgres", {}).get("condition") == "service_healthy",
                 "migrate must wait for a healthy postgres")
        else:
            need(hc and not hc.get("disable"), f"{name}: healthcheck expected")
            need(svc.get("restart") in ("always", "unless-stopped"), f"{name}: restart policy expected")
        if name in PLATFORM - {"migrate"}:
            deps = svc.get("depends_on", {})
            need(deps.get("migrate", {}).get("condition") == "service_completed_successfully",
                 f"{name} must start after migrate completed successfully")
            for dep in ("postgres", "redis"):
                need(deps.get(dep, {}).get("condition") == "service_healthy",
                     f"{name} must wait for a healthy {dep}")
        if name.startswith("agent-"):
            need(svc.get("deploy", {}).get("replicas") == 2, f"{name}: 2 replicas expected")
            need(hc.get("test") == ["CMD", "/usr/local/bin/platform", "healthcheck", "--agent"],
                 f"{name}: the agent healthcheck (platform healthcheck --agent) expected")

    redis_cmd = " ".join(services.get("redis", {}).get("command") or [])
    need("--appendonly yes" in redis_cmd and "--requirepass" in redis_cmd,
         "redis must run with AOF and a password")

    for e in errors:
        print(f"compose policy: {e}", file=sys.stderr)
    if not errors:
        print(f"compose: ok ({len(services)} services, policy checked)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
