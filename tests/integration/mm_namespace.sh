#!/bin/bash
# ModemManager against the virtual modem, as a Quectel EC25 on ttyUSB2.
# Run by tests/integration/test_peer_modemmanager.py INSIDE `unshare --mount --pid ...`:
# every mount below is private to this namespace, nothing on the host changes, and every
# process started here ends with the namespace.
#   $1 the virtual modem's pty   $2 a scratch directory (on the host's /tmp)   $3 python
# Writes $2/modem.json and $2/sim.json (mmcli -J) and $2/mm.log.
set -euo pipefail
PTY="$1"; W="$2"; PY="$3"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# wait_for <tries> <command...>: poll a condition that has no event to wait on
# (a D-Bus name appearing, a modem state) every 0.2 s, at most <tries> times.
wait_for() { local n=$1; shift; for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.2; done; return 1; }

# 1. A fake sysfs: one USB device 2c7c:0125 (Quectel EC25), interface 2 (its AT port,
#    driver option) holding ttyUSB2, laid out as the kernel lays it out.
mount -t tmpfs sysfake /sys
DEV=/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1
IF=$DEV/1-1:1.2
TTY=$IF/ttyUSB2/tty/ttyUSB2
mkdir -p "$TTY" /sys/bus/usb/drivers/option /sys/bus/usb-serial/drivers/option1 /sys/class/tty
echo 2c7c > $DEV/idVendor; echo 0125 > $DEV/idProduct
echo Quectel > $DEV/manufacturer; echo EC25 > $DEV/product
ln -s /sys/bus/usb $DEV/subsystem
for f in bInterfaceClass bInterfaceSubClass bInterfaceProtocol; do echo ff > "$IF/$f"; done
echo 02 > "$IF/bInterfaceNumber"
ln -s /sys/bus/usb "$IF/subsystem"; ln -s /sys/bus/usb/drivers/option "$IF/driver"
ln -s /sys/bus/usb-serial "$IF/ttyUSB2/subsystem"; ln -s /sys/bus/usb-serial/drivers/option1 "$IF/ttyUSB2/driver"
ln -s "$IF/ttyUSB2" "$TTY/device"; ln -s /sys/class/tty "$TTY/subsystem"
echo 188:2 > "$TTY/dev"
ln -s "$TTY" /sys/class/tty/ttyUSB2

# 2. /dev/ttyUSB2 is the pty, in a private /dev that keeps the few nodes the daemons use.
mkdir -p "$W/olddev"; mount --rbind /dev "$W/olddev"
mount -t tmpfs devfake /dev
for n in null zero urandom random tty full; do touch /dev/$n; mount --bind "$W/olddev/$n" /dev/$n; done
mkdir /dev/pts; mount --bind "$W/olddev/pts" /dev/pts; ln -s pts/ptmx /dev/ptmx
ln -s "$PTY" /dev/ttyUSB2

# 3. A private system bus, a polkit that says yes on it, then ModemManager without udev,
#    told about ttyUSB2 by an initial kernel event.
cat > "$W/bus.conf" <<XML
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=$W/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/>
<allow receive_sender="*"/></policy></busconfig>
XML
dbus-daemon --config-file="$W/bus.conf" --nofork --nopidfile & PIDS+=($!)
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$W/bus"
wait_for 50 test -S "$W/bus"
(cd "$REPO" && exec "$PY" -m tests.integration.fake_polkit > "$W/polkit.out" 2>&1) & PIDS+=($!)
wait_for 50 grep -q ready "$W/polkit.out"
echo "action=add,subsystem=tty,name=ttyUSB2" > "$W/events"
ModemManager --no-auto-scan --test-no-udev --test-no-suspend-resume \
  --initial-kernel-events="$W/events" --log-level=DEBUG --log-file="$W/mm.log" & PIDS+=($!)

# 4. What a user does: find the modem, enable it, wait until it is registered.
wait_for 150 sh -c 'mmcli -L 2>/dev/null | grep -q /Modem/0'
mmcli -m 0 -e
wait_for 100 sh -c 'mmcli -m 0 -K > "$0/state" && grep -q "modem.generic.state *: registered" "$0/state" \
  && ! grep -q "modem.generic.signal-quality.value *: 0$" "$0/state"' "$W"
mmcli -m 0 -J > "$W/modem.json"
mmcli -i 0 -J > "$W/sim.json"
