#!/bin/sh
# Install the Dockside edge agent as a systemd service on Linux.
#
#   sudo ./install.sh --binary ./dockside-agent [--config my.toml]
#   ./install.sh --root /tmp/try --binary ./dockside-agent   # into a folder, no system changes
#
# Creates the service user `dockside-agent` (in group dialout for serial scales), the folders
#   /opt/dockside-agent        the binary (owned by the service user: self-update swaps it)
#   /etc/dockside-agent        agent.toml (kept if present; root-owned, readable by the service)
#   /var/lib/dockside-agent    the agent's database (mode 0700)
#   /var/log/dockside-agent    logs beyond the journal (mode 0750)
# and the hardened unit /etc/systemd/system/dockside-agent.service, then enables and starts it.
# With --root DIR every path goes under DIR, and useradd, chown and systemctl are only printed.
# Run it again to upgrade the binary: the configuration and the data are kept.
set -eu

SERVICE_USER=dockside-agent
HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
ROOT=""
BINARY=""
CONFIG="$HERE/../dockside-agent.toml"
UNIT="$HERE/dockside-agent.service"
START=yes

usage() {
    cat <<USAGE
usage: $0 --binary PATH [--config PATH] [--root DIR] [--no-start]
  --binary PATH   the one-file dockside-agent executable (make agent-binary -> dist/dockside-agent)
  --config PATH   the agent.toml to install when none is there (default: the documented example)
  --root DIR      install under DIR instead of / (for tests and packaging; changes nothing else)
  --no-start      install and enable, but do not start the service now
USAGE
}

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || fail "--root needs a folder"; ROOT=$2; shift 2 ;;
        --binary) [ $# -ge 2 ] || fail "--binary needs a path"; BINARY=$2; shift 2 ;;
        --config) [ $# -ge 2 ] || fail "--config needs a path"; CONFIG=$2; shift 2 ;;
        --no-start) START=no; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; fail "unknown option $1" ;;
    esac
done

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    fail "run it as root (sudo $0 ...), or with --root DIR to install into a folder"
fi
[ -n "$BINARY" ] || { usage >&2; fail "give the agent binary with --binary (build it with: make agent-binary)"; }
[ -f "$BINARY" ] || fail "there is no file $BINARY: build it with 'make agent-binary' or give its path"
[ -f "$CONFIG" ] || fail "there is no configuration file $CONFIG: give one with --config"
[ -f "$UNIT" ] || fail "the unit file $UNIT is missing: run this script from the installers/linux folder it came in"

# Under --root, system commands are printed instead of run.
system() {
    if [ -n "$ROOT" ]; then
        echo "would run: $*"
    else
        "$@"
    fi
}

"$BINARY" --version >/dev/null 2>&1 || fail "$BINARY does not run ('$BINARY --version' failed): is it built for this machine?"

if [ -z "$ROOT" ] && id "$SERVICE_USER" >/dev/null 2>&1; then
    echo "service user $SERVICE_USER exists"
else
    system useradd --system --user-group --home-dir /var/lib/dockside-agent --no-create-home \
        --shell /usr/sbin/nologin --comment "Dockside edge agent" "$SERVICE_USER"
fi
system usermod --append --groups dialout "$SERVICE_USER"

install -d -m 0755 "$ROOT/opt/dockside-agent" "$ROOT/etc/dockside-agent" "$ROOT/etc/systemd/system"
install -d -m 0700 "$ROOT/var/lib/dockside-agent"
install -d -m 0750 "$ROOT/var/log/dockside-agent"

# Upgrade in place without a window with no binary: copy beside it, then rename over it.
install -m 0755 "$BINARY" "$ROOT/opt/dockside-agent/.dockside-agent.installing"
mv -f "$ROOT/opt/dockside-agent/.dockside-agent.installing" "$ROOT/opt/dockside-agent/dockside-agent"

if [ -f "$ROOT/etc/dockside-agent/agent.toml" ]; then
    echo "keeping the existing $ROOT/etc/dockside-agent/agent.toml"
else
    install -m 0640 "$CONFIG" "$ROOT/etc/dockside-agent/agent.toml"
fi
install -m 0644 "$UNIT" "$ROOT/etc/systemd/system/dockside-agent.service"

system chown -R "$SERVICE_USER:$SERVICE_USER" /opt/dockside-agent /var/lib/dockside-agent /var/log/dockside-agent
system chown "root:$SERVICE_USER" /etc/dockside-agent/agent.toml
system systemctl daemon-reload
system systemctl enable dockside-agent.service
if [ "$START" = yes ]; then
    system systemctl restart dockside-agent.service
fi

echo "Installed $("$BINARY" --version) into ${ROOT:-/}."
echo "Next: enroll it once (as the service user), then start it:"
echo "  sudo -u $SERVICE_USER /opt/dockside-agent/dockside-agent enroll --cloud HOST:PORT --token TOKEN --data-dir /var/lib/dockside-agent"
echo "  sudo systemctl restart dockside-agent"
