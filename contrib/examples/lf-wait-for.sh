#!/bin/sh
# Wait until a file on the LF mount exists and contains a line matching a pattern (for
# example a flag another node sets), then print that line. Polls once a second.
# Usage: lf-wait-for.sh FILE PATTERN [TIMEOUT_SECONDS]
#   e.g. lf-wait-for.sh cluster/leader '^host=' 60
# LF_MNT overrides the mount point (default /mnt/lf). Exit 1 on timeout.
set -eu
mnt=${LF_MNT:-/mnt/lf}
file=$mnt/$1
pattern=$2
timeout=${3:-60}
i=0
while [ "$i" -lt "$timeout" ]; do
  if [ -f "$file" ] && line=$(grep -m 1 -- "$pattern" "$file"); then
    printf '%s\n' "$line"
    exit 0
  fi
  sleep 1
  i=$((i + 1))
done
echo "lf-wait-for: $pattern did not appear in $file within $timeout s" >&2
exit 1
