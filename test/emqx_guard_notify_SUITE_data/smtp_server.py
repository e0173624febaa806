#!/usr/bin/env python3
"""A real SMTP server on 127.0.0.1 for emqx_guard_notify_SUITE (aiosmtpd).

Usage: smtp_server.py --out DIR [--mode none|starttls|tls] [--cert F --key F]
                      [--auth USER:PASSWORD] [--defer N]

Listens on a free port of 127.0.0.1 and prints "PORT <n>" on stdout once it accepts connections.
Every message it accepts is written to DIR as <n>.json (n = 1, 2, ...; written to a temporary
name and renamed, so a file that exists is complete): mail_from, rcpt_tos, subject, body (the
decoded text part), auth_user, tls (whether the session was encrypted).

--mode starttls offers STARTTLS and refuses mail before it; --mode tls wraps the whole
connection in TLS (implicit TLS, "SMTPS"). --auth requires AUTH (PLAIN/LOGIN) with exactly
these credentials. --defer N answers the first N messages' DATA with 451 (try again later).
The server exits when its standard input closes (the test's port closing).
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import socket
import ssl
import sys
import threading
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, out_dir, defer):
        self.out_dir = out_dir
        self.defer = defer
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        if self.defer > 0:
            self.defer -= 1
            return "451 4.3.0 deferred by the test server, try again later"
        self.count += 1
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(msg["subject"]),
            "body": part.get_content() if part is not None else "",
            "auth_user": session.auth_data if isinstance(session.auth_data, str) else None,
            "tls": (session.ssl is not None
                    or server.transport.get_extra_info("ssl_object") is not None),
        }
        tmp = os.path.join(self.out_dir, ".%d.tmp" % self.count)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out_dir, "%d.json" % self.count))
        return "250 2.0.0 Ok: queued as TEST%d" % self.count


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == user
              and auth_data.password.decode() == password)
        # handled=False: aiosmtpd then answers 535 itself (handled=True would answer nothing)
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)
    return check


def exit_on_stdin_eof():
    sys.stdin.read()
    os._exit(0)


async def main():
    warnings.simplefilter("ignore")
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=["none", "starttls", "tls"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth")
    p.add_argument("--defer", type=int, default=0)
    a = p.parse_args()

    ctx = None
    if a.mode != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)

    handler = Recorder(a.out, a.defer)
    kwargs = {"hostname": "smtp.test", "ident": "emqx_guard test SMTP"}
    if a.mode == "starttls":
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.auth:
        user, password = a.auth.split(":", 1)
        kwargs.update(authenticator=authenticator(user, password), auth_required=True,
                      # implicit TLS is encrypted too, aiosmtpd just does not see it
                      auth_require_tls=(a.mode == "starttls"))

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, **kwargs), sock=sock,
                                      ssl=ctx if a.mode == "tls" else None)
    print("PORT %d" % sock.getsockname()[1], flush=True)
    threading.Thread(target=exit_on_stdin_eof, daemon=True).start()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
