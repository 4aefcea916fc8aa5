"""The field technician's console over USB serial (docs/console.md).

A face: it never opens the modem's AT port and never touches the supervisor's objects.
Everything it shows or does goes through the daemon's control socket
(``agent/core/control.py``). The parts, each with one job:

* ``linedisc``: bytes in -> echo, edits and whole lines out (pure);
* ``commands``: the command table, each command's help, text and ``--json`` rendering;
* ``auth``: the technician's side of the login (keys, ``sign``); the daemon issues the
  challenge, checks the signature and keeps the slow-down (``agent/core/logins.py``);
* ``session``: one terminal's conversation (prompt, login, dispatch, ``watch``, idle
  logout), every line of output made inert and redacted;
* ``ports``: the serial port itself (pyserial, 115200 8N1), reopened when it vanishes, with a
  bounded output buffer so a terminal that stops reading never blocks anything;
* ``tool``: ``pocket-agent console serve|sign|keygen``.
"""
