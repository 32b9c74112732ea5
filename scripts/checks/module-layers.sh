#!/usr/bin/env bash
# The deployer's module layering (docs/architecture.md): no import cycle, no command importing
# another, nothing below the engine importing it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
python3 scripts/checks/lib/module_imports.py deployer/src
