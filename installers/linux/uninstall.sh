#!/bin/sh
# Remove the Dockside edge agent service installed by install.sh.
#
#   sudo ./uninstall.sh            # stop and remove the service and the binary; keep config and data
#   sudo ./uninstall.sh --purge    # also delete the configuration, the data, the logs and the user
#   ./uninstall.sh --root DIR      # the same under DIR, printing the system commands
set -eu

SERVICE_USER=dockside-agent
ROOT=""
PURGE=no

fail() {
    echo "uninstall.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || fail "--root needs a folder"; ROOT=$2; shift 2 ;;
        --purge) PURGE=yes; shift ;;
        -h|--help) echo "usage: $0 [--purge] [--root DIR]"; exit 0 ;;
        *) fail "unknown option $1 (usage: $0 [--purge] [--root DIR])" ;;
    esac
done

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    fail "run it as root (sudo $0), or with --root DIR"
fi

system() {
    if [ -n "$ROOT" ]; then
        echo "would run: $*"
    else
        "$@" || true
    fi
}

system systemctl disable --now dockside-agent.service
rm -f "$ROOT/etc/systemd/system/dockside-agent.service"
system systemctl daemon-reload
rm -rf "$ROOT/opt/dockside-agent"

if [ "$PURGE" = yes ]; then
    rm -rf "$ROOT/etc/dockside-agent" "$ROOT/var/lib/dockside-agent" "$ROOT/var/log/dockside-agent"
    system userdel "$SERVICE_USER"
    echo "Removed the agent, its configuration, its data and its user."
else
    echo "Removed the agent service and binary; kept $ROOT/etc/dockside-agent and $ROOT/var/lib/dockside-agent (--purge deletes them)."
fi
