"""A polkit authority that says yes, for ModemManager on a private test bus.

ModemManager asks polkit before it enables a modem (``mmcli -e``). On the private system
bus of the peer check there is no polkit daemon and no login session, so this stand-in
owns ``org.freedesktop.PolicyKit1`` and authorises every ``CheckAuthorization``. It exists
only on that bus, inside the test's own mount namespace; it is what a developer's laptop
gives root anyway. Run: ``python -m tests.integration.fake_polkit`` with
``DBUS_SYSTEM_BUS_ADDRESS`` set; it prints ``ready`` once it owns the name.
"""

from __future__ import annotations

import sys

from jeepney import DBus, HeaderFields, MessageType, new_error, new_method_return
from jeepney.io.blocking import open_dbus_connection

NAME = "org.freedesktop.PolicyKit1"
INTERFACE = "org.freedesktop.PolicyKit1.Authority"


def serve() -> None:
    with open_dbus_connection(bus="SYSTEM") as conn:
        reply = conn.send_and_get_reply(DBus().RequestName(NAME))
        if reply.body[0] != 1:  # 1 = primary owner
            raise SystemExit(f"could not own {NAME}: {reply.body}")
        print("ready", flush=True)
        while True:
            msg = conn.receive()
            if msg.header.message_type != MessageType.method_call:
                continue
            member = msg.header.fields.get(HeaderFields.member)
            if member == "CheckAuthorization":
                conn.send(new_method_return(msg, "(bba{ss})", ((True, False, {}),)))
            elif member == "GetAll":
                props = {"BackendName": ("s", "fake"), "BackendVersion": ("s", "0"), "BackendFeatures": ("u", 0)}
                conn.send(new_method_return(msg, "a{sv}", (props,)))
            else:
                conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s", (str(member),)))


if __name__ == "__main__":
    try:
        serve()
    except KeyboardInterrupt:
        sys.exit(0)
