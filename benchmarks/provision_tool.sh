#!/usr/bin/env bash
# converge-50 as a run_bench.py tool: runs provision with --json and prints CHANGED=<n>, the sum
# of the recap's per-host "changed" counts (human output stays on stderr, which run_bench logs).
# Usage: provision_tool.sh PYTHON INVENTORY [provision playbook options, e.g. --forks 10]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=$1
inventory=$2
shift 2
# The parser starts while provision runs, so it adds no start-up time to the measurement.
"$python" -m provision playbook "$here/converge50.yml" -i "$inventory" --json "$@" \
  | "$python" -I -S -c '
import json, sys
changed = None
for line in sys.stdin:
    if line.startswith("{"):
        event = json.loads(line)
        if event.get("event") == "recap":
            changed = sum(stats["changed"] for stats in event["hosts"].values())
print(f"CHANGED={changed}" if changed is not None else "CHANGED=?")
'
