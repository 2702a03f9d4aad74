"""An independent look at a secured deployment: nats-py and Python's own TLS, none of the
project's code. Called by infra/tests/security.rs with a command and JSON on stdin; prints one
JSON object.

  listeners  every listener refuses a plaintext peer and a certificate of another CA; the
             client listener refuses a wrong password with "Authorization Violation" and
             accepts the right one
  denials    what a user may not do is refused by the server (a permissions violation for that
             subject); what it may do succeeds
  serial     the serial number of the certificate a new connection sees
  route_info the INFO a route listener sends once the TLS handshake is done (what it advertises)

The JSON comes on stdin, never as an argument: it holds a password.
"""

import asyncio
import json
import socket
import ssl
import sys



def tls_context(c, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=c["ca"])
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def read_info(sock):
    """The INFO line a NATS listener sends first, in plaintext; None when it sends none (route
    and gateway listeners with TLS wait for the peer's TLS handshake first)."""
    data = b""
    sock.settimeout(2)
    try:
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    finally:
        sock.settimeout(5)
    line = data.decode(errors="replace").strip()
    if not line.startswith("INFO "):
        return None
    return json.loads(line[5:])


def plaintext_refused(host, port):
    """Speaks plaintext after INFO: a secured listener never answers PONG."""
    with socket.create_connection((host, port), timeout=5) as sock:
        info = read_info(sock)
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        got = b""
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return {
            "info": info is not None,
            "tls_required": bool(info and info.get("tls_required")),
            "refused": b"PONG" not in got,
        }


def foreign_cert_refused(c, host, port):
    """Upgrades to TLS presenting a certificate of another CA: the handshake (or the first
    read after it) fails."""
    ctx = tls_context(c, c["other_cert"], c["other_key"])
    ctx.check_hostname = False
    with socket.create_connection((host, port), timeout=5) as sock:
        read_info(sock)
        try:
            with ctx.wrap_socket(sock) as tls:
                tls.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
                got = tls.recv(4096)
                while got and b"PONG" not in got:
                    more = tls.recv(4096)
                    if not more:
                        break
                    got += more
                return {"refused": b"PONG" not in got, "detail": got[:80].decode(errors="replace")}
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError, socket.timeout) as e:
            return {"refused": True, "detail": type(e).__name__ + ": " + str(e)[:120]}


async def connect(c, url, user, password, cert=None, key=None, prefix=None):
    import nats  # only the commands that log in need nats-py

    errors = []

    async def on_error(e):
        errors.append(str(e))

    kwargs = dict(
        servers=[url],
        tls=tls_context(c, cert or c["cert"], key or c["key"]),
        allow_reconnect=False,
        connect_timeout=5,
        error_cb=on_error,
    )
    if c.get("token"):
        kwargs["token"] = c["token"]
    else:
        kwargs["user"], kwargs["password"] = user, password
    if prefix:
        kwargs["inbox_prefix"] = prefix.encode()
    nc = await nats.connect(**kwargs)
    return nc, errors


async def listeners(c):
    out = {}
    for l in c["listeners"]:
        entry = {"kind": l["kind"]}
        entry["plaintext"] = plaintext_refused(l["host"], l["port"])
        entry["foreign_cert"] = foreign_cert_refused(c, l["host"], l["port"])
        if l["kind"] == "client":
            url = "tls://%s:%d" % (l["host"], l["port"])
            try:
                nc, _ = await connect(c, url, c["user"], "wrong-" + c["password"])
                await nc.close()
                entry["wrong_password"] = "accepted"
            except Exception as e:  # nats-py raises the server's -ERR text
                entry["wrong_password"] = str(e)
            nc, _ = await connect(c, url, c["user"], c["password"], prefix=c.get("prefix"))
            entry["right_password"] = nc.is_connected
            await nc.close()
        out[l["name"]] = entry
    return out


async def denials(c):
    """Each attempt by the user is judged by the server's answer."""
    nc, errors = await connect(c, c["url"], c["user"], c["password"], prefix=c["prefix"])
    js = nc.jetstream(timeout=2)
    out = {}

    async def attempt(name, coro, subject):
        before = len(errors)
        try:
            await coro
            result = "ok"
        except Exception as e:
            result = type(e).__name__ + ": " + str(e)[:160]
        await asyncio.sleep(0.3)
        # nats-py reports the server's -ERR lowercased ("nats: permissions violation for ...").
        violations = [
            e
            for e in errors[before:]
            if "permissions violation" in e.lower() and subject.lower() in e.lower()
        ]
        out[name] = {"result": result, "violation": bool(violations)}

    s = c["stream"]
    await attempt("delete_stream", js.delete_stream(s), "$JS.API.STREAM.DELETE." + s)
    await attempt("purge_stream", js.purge_stream(s), "$JS.API.STREAM.PURGE." + s)
    await attempt("publish_outside", nc.publish("private.secret", b"x"), "private.secret")
    other = c["other_durable"]
    next_subject = "$JS.API.CONSUMER.MSG.NEXT.%s.%s" % (s, other)
    await attempt(
        "read_other_consumer",
        nc.request(next_subject, b'{"batch":1,"no_wait":true}', timeout=2),
        next_subject,
    )
    await attempt("stream_info", js.stream_info(s), "$JS.API.STREAM.INFO." + s)
    await nc.close()
    return out


async def serial(c):
    ctx = tls_context(c, c["cert"], c["key"])
    with socket.create_connection((c["host"], c["port"]), timeout=5) as sock:
        read_info(sock)
        with ctx.wrap_socket(sock, server_hostname=c["host"]) as tls:
            return {"serial": tls.getpeercert()["serialNumber"].lower().lstrip("0")}


async def route_info(c):
    ctx = tls_context(c, c["cert"], c["key"])
    ctx.check_hostname = False
    with socket.create_connection((c["host"], c["port"]), timeout=5) as sock:
        with ctx.wrap_socket(sock) as tls:
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
    line = data.decode(errors="replace").strip()
    return json.loads(line[5:]) if line.startswith("INFO ") else {"unexpected": line[:200]}


def main():
    command, config = sys.argv[1], json.load(sys.stdin)
    run = {"listeners": listeners, "denials": denials, "serial": serial, "route_info": route_info}[
        command
    ]
    print(json.dumps(asyncio.run(run(config))))


if __name__ == "__main__":
    main()
