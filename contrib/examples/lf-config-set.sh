#!/bin/sh
# Set KEY=VALUE in a shared "key=value" config file kept on the LF mount, creating the
# file and its directory if needed. The new file is written beside the old one and
# renamed over it, so every node sees either the old or the new file, never half of it.
# Usage: lf-config-set.sh FILE KEY VALUE  e.g. lf-config-set.sh app/app.conf port 8080
# LF_MNT overrides the mount point (default /mnt/lf).
set -eu
mnt=${LF_MNT:-/mnt/lf}
file=$mnt/$1
key=$2
value=$3
mkdir -p "$(dirname "$file")"
tmp=$(dirname "$file")/.$(basename "$file").tmp.$$
trap 'rm -f "$tmp"' EXIT
if [ -f "$file" ]; then
  grep -v "^$key=" "$file" > "$tmp" || true
else
  : > "$tmp"
fi
printf '%s=%s\n' "$key" "$value" >> "$tmp"
mv "$tmp" "$file"
trap - EXIT
