#!/usr/bin/env bash
# Build the Debian package, install it on this machine, check what it put
# where, verify the installed unit, remove it (the config stays), purge it
# (the config goes). Run as root; .ci/run runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-deb: $*" >&2; exit 1; }
expect_stat() { # path owner:group mode
    local got
    got=$(stat -c '%U:%G %a' "$1") || fail "$1 is missing"
    [ "$got" = "$2 $3" ] || fail "$1 is $got, expected $2 $3"
}

cargo deb --locked
deb=$(ls -t target/debian/pgwarden_*.deb | head -n1)
echo "test-deb: built $deb ($(du -h "$deb" | cut -f1))"
# (Whole outputs in variables: `grep -q` in a pipe would end it early under pipefail.)
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
grep -qx /etc/pgwarden/pgwarden.toml <<<"$conffiles" || fail "/etc/pgwarden/pgwarden.toml is not a conffile: $conffiles"

dpkg -i "$deb"
trap 'dpkg -P pgwarden >/dev/null 2>&1 || true' EXIT
getent passwd pgwarden >/dev/null || fail "no pgwarden user"
[ "$(getent passwd pgwarden | cut -d: -f7)" = /usr/sbin/nologin ] || fail "pgwarden user has a login shell"
expect_stat /usr/bin/pgwarden root:root 755
expect_stat /etc/pgwarden/pgwarden.toml root:pgwarden 640
expect_stat /var/lib/pgwarden pgwarden:pgwarden 700
expect_stat /var/lib/pgwarden/backups pgwarden:pgwarden 700
expect_stat /lib/systemd/system/pgwarden.service root:root 644
/usr/bin/pgwarden --version | grep -q pgwarden || fail "the installed binary does not run"
# The group can read the config, others cannot.
runuser -u pgwarden -- cat /etc/pgwarden/pgwarden.toml >/dev/null || fail "pgwarden cannot read its config"
if runuser -u nobody -- cat /etc/pgwarden/pgwarden.toml >/dev/null 2>&1; then
    fail "nobody can read /etc/pgwarden/pgwarden.toml"
fi
# The installed unit with its drop-in: any output is a defect.
out=$(systemd-analyze verify /lib/systemd/system/pgwarden.service 2>&1) || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify complained: $out"
grep -qx 'ExecStart=/usr/bin/pgwarden --config /etc/pgwarden/pgwarden.toml serve' \
    /lib/systemd/system/pgwarden.service.d/package.conf || fail "the unit's drop-in does not run /usr/bin/pgwarden"

dpkg -r pgwarden
[ ! -e /usr/bin/pgwarden ] || fail "remove left the binary"
[ -f /etc/pgwarden/pgwarden.toml ] || fail "remove deleted the config (it must stay until purge)"
dpkg -P pgwarden
[ ! -e /etc/pgwarden/pgwarden.toml ] || fail "purge left the config"
[ ! -e /etc/pgwarden ] || fail "purge left /etc/pgwarden"
trap - EXIT
echo "test-deb: ok (installed, checked, verified, removed with the config kept, purged)"
