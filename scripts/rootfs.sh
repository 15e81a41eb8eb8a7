#!/bin/sh
# The container image's whole file system: what the Dockerfile's final stage (FROM scratch) copies, built by
# this one script there and in the tests (test/deploy/rootfs.test.ts), so the two cannot drift apart.
#   scripts/rootfs.sh DIR [BINARY]     BINARY defaults to dist/tag-connector
# DIR gets: the binary as /tag-connector, the C libraries and the dynamic loader it links against (found
# with ldd, so the same script serves amd64 and arm64), the CA bundle, a passwd and group naming the image's
# user (65532), nsswitch.conf, and /tmp. Nothing else: no shell, no package manager.
set -eu
dir=${1:?usage: scripts/rootfs.sh DIR [BINARY]}
binary=${2:-dist/tag-connector}
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -x "$binary" ] || { echo "rootfs.sh: no executable $binary (bun run build)" >&2; exit 1; }
[ -f "$ca_bundle" ] || { echo "rootfs.sh: no $ca_bundle (apt-get install ca-certificates)" >&2; exit 1; }

mkdir -p "$dir/etc/ssl/certs" "$dir/tmp"
chmod 1777 "$dir/tmp"
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do cp --parents -L "$lib" "$dir/"; done
cp "$binary" "$dir/tag-connector"
cp "$ca_bundle" "$dir/etc/ssl/certs/"
echo 'tag-connector:x:65532:65532:tag-connector:/nonexistent:/sbin/nologin' >"$dir/etc/passwd"
echo 'tag-connector:x:65532:' >"$dir/etc/group"
# Without nsswitch.conf glibc would ask DNS before /etc/hosts (which the container runtime provides), and
# "localhost" might not resolve.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$dir/etc/nsswitch.conf"
