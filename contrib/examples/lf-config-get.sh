#!/bin/sh
# Print one key of a shared "key=value" config file kept on the LF mount.
# Usage: lf-config-get.sh FILE KEY        e.g. lf-config-get.sh app/app.conf port
# LF_MNT overrides the mount point (default /mnt/lf). Exit 1 if the key is absent.
set -eu
mnt=${LF_MNT:-/mnt/lf}
file=$mnt/$1
key=$2
[ -f "$file" ] || { echo "lf-config-get: no $file" >&2; exit 1; }
# Last assignment wins, as in most key=value formats; the value is everything after '='.
val=$(sed -n "s/^$key=//p" "$file" | tail -n 1)
if [ -z "$val" ] && ! grep -q "^$key=" "$file"; then
  echo "lf-config-get: $key not set in $file" >&2
  exit 1
fi
printf '%s\n' "$val"
