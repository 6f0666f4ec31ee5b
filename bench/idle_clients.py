#!/usr/bin/env python3
"""Client side of bench/idle_clients.sh.

idle PORT N      open N keep-alive connections, send one GET on each, read
                 the answer, print "ready", hold them until stdin closes.
heads PORT N KB  open N connections, send KB kilobytes of a header that
                 never ends on each (ignoring refusals), print "ready", hold.
"""
import asyncio
import sys


async def idle(port, n):
    conns = []
    sem = asyncio.Semaphore(200)

    async def one():
        async with sem:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            await w.drain()
            head = await r.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await r.readexactly(length)
            conns.append((r, w))

    await asyncio.gather(*(one() for _ in range(n)))
    return conns


async def heads(port, n, kb):
    conns = []
    chunk = b"a" * 1024

    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            w.write(b"GET / HTTP/1.1\r\nHost: bench\r\nX-Big: ")
            for _ in range(kb):
                w.write(chunk)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        conns.append((r, w))

    await asyncio.gather(*(one() for _ in range(n)))
    return conns


async def main():
    mode, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if mode == "idle":
        conns = await idle(port, n)
    else:
        conns = await heads(port, n, int(sys.argv[4]))
    print("ready", len(conns), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
