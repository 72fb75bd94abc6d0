#!/usr/bin/env bash
# The flake check (docs/TESTING.md): `make test` several times in a row while CPU-bound
# processes run beside it, then every test that failed in any round, with its round.
# A test that passes on a quiet machine and fails here depends on timing or scheduling.
#
#   scripts/flake_check.sh [ROUNDS] [HOGS]      (defaults: 3 rounds, 2 CPU-bound processes)
#   make flake-check                            (the same, with the defaults)
#
# Each round's output and JUnit XML go to flake-check/ (FLAKE_DIR to change); the exit status
# is 0 only when every round passed. Extra pytest options: PYTEST_ADDOPTS.
set -uo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-3}"
hogs="${2:-2}"
out="${FLAKE_DIR:-flake-check}"
mkdir -p "$out"
rm -f "$out"/round-*.log "$out"/round-*.xml

hog_pids=()
stop_hogs() {
  for pid in "${hog_pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${hog_pids[@]}"; do wait "$pid" 2>/dev/null; done
  hog_pids=()
}
trap stop_hogs EXIT INT TERM

for _ in $(seq "$hogs"); do
  # A busy loop in its own process: one core's worth of competition, nothing else.
  python3 -c 'while True: pass' &
  hog_pids+=("$!")
done
echo "flake check: $rounds rounds of make test beside $hogs CPU-bound processes (${hog_pids[*]})"

failed_rounds=0
for round in $(seq "$rounds"); do
  started=$(date +%s)
  PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} --junitxml=$out/round-$round.xml" \
    make test >"$out/round-$round.log" 2>&1
  status=$?
  took=$(( $(date +%s) - started ))
  summary=$(grep -E '^=+ .*(passed|failed|error).* =+$' "$out/round-$round.log" | tail -1)
  echo "round $round: exit $status in $((took / 60)) min $((took % 60)) s: ${summary:-no summary}"
  if [[ $status -ne 0 ]]; then
    failed_rounds=$((failed_rounds + 1))
  fi
done

stop_hogs
echo "failures by round (from the JUnit files):"
python3 - "$out" <<'EOF'
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

found = False
for xml in sorted(Path(sys.argv[1]).glob("round-*.xml")):
    for case in ET.parse(xml).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            found = True
            print(f"  {xml.stem}: {case.get('classname')}::{case.get('name')}")
if not found:
    print("  none")
EOF
echo "flake check: $failed_rounds of $rounds rounds failed (logs in $out/)"
[[ $failed_rounds -eq 0 ]]
