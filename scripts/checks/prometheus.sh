#!/usr/bin/env bash
# The platform's Prometheus alert rules and Grafana dashboard (monitoring/):
#   promtool check rules + promtool test rules (each alert fires, and only when it should),
#   promtool check config of the compose stack's prometheus.yml,
#   every dashboard query parsed by promtool (as recording rules),
#   every metric they name is one the orchestrator exports.
# promtool comes from Debian's `prometheus` package, installed here when missing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
if ! command -v promtool >/dev/null; then
  echo "installing promtool (Debian package prometheus)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

promtool check rules monitoring/prometheus/alerts.yml
(cd monitoring/prometheus && promtool test rules alerts.test.yml)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp monitoring/prometheus/alerts.yml "$tmp/alerts.yml"
sed "s|/etc/prometheus/alerts.yml|$tmp/alerts.yml|" monitoring/prometheus/prometheus.yml >"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"

python3 - "$tmp/dashboard-rules.yml" <<'PY'
import json, re, sys, pathlib
root = pathlib.Path(".")
dash = json.loads((root / "monitoring/grafana/dashboards/platform.json").read_text())
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
assert exprs, "the dashboard has no queries"
uids = {t["datasource"]["uid"] for p in dash["panels"] for t in p["targets"]}
assert uids == {"prometheus"}, f"dashboard queries must use the provisioned datasource uid 'prometheus': {uids}"
rules = {"groups": [{"name": "dashboard", "rules": [
    {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]}]}
pathlib.Path(sys.argv[1]).write_text(json.dumps(rules))
# Metric names used by the alerts and the dashboard must be ones the orchestrator writes.
source = "".join(p.read_text() for p in (root / "platform/orchestrator/src").rglob("*.rs"))
exported = set(re.findall(r"\bplatform_[a-z_]+", source))
used = set(re.findall(r"\bplatform_[a-z_]+", (root / "monitoring/prometheus/alerts.yml").read_text() + "\n".join(exprs)))
unknown = sorted(m for m in used if re.sub(r"_(bucket|count|sum)$", "", m) not in exported and m not in exported)
assert not unknown, f"metrics the orchestrator does not export: {unknown}"
print(f"dashboard: {len(exprs)} queries, metrics {sorted(used)} all exported")
PY
promtool check rules "$tmp/dashboard-rules.yml"
