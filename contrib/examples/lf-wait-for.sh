#!/bin/sh
# Wait until a file on the LF mount exists and contains a line matching a pattern (for
# example a flag another node sets), then print that line. Sleeps in `lf watch -once`
# between checks, so it wakes as soon as the file (or, while its directory does not
# exist yet, anything on the mount) changes; without a reachable node it checks once
# a second.
# Usage: lf-wait-for.sh FILE PATTERN [TIMEOUT_SECONDS]
#   e.g. lf-wait-for.sh cluster/leader '^host=' 60
# LF_MNT overrides the mount point (default /mnt/lf); LF_CLI the lf command (default
# `lf`, e.g. "lf -home /srv/lf"). Exit 1 on timeout.
set -eu
mnt=${LF_MNT:-/mnt/lf}
lf=${LF_CLI:-lf}
file=$mnt/$1
pattern=$2
timeout=${3:-60}
start=$(date +%s)
cursor=
while :; do
  if [ -f "$file" ] && line=$(grep -m 1 -- "$pattern" "$file"); then
    printf '%s\n' "$line"
    exit 0
  fi
  left=$((start + timeout - $(date +%s)))
  [ "$left" -gt 0 ] || break
  target=$file
  [ -d "$(dirname "$file")" ] || target=$mnt
  # -json: the event's Cursor lets the next wait resume after it (nothing is missed
  # between two waits).
  # shellcheck disable=SC2086
  if ev=$(timeout "$left" $lf -json watch -once ${cursor:+-cursor "$cursor"} "$target" 2>/dev/null); then
    cursor=$(printf '%s\n' "$ev" | sed -n 's/.*"Cursor":\([0-9]*\).*/\1/p' | tail -n 1)
  else
    [ "$(date +%s)" -lt $((start + timeout)) ] && sleep 1
  fi
done
echo "lf-wait-for: $pattern did not appear in $file within $timeout s" >&2
exit 1
