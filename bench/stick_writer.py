#!/usr/bin/env python3
"""Write stick entries at a fixed offered rate through a node's runtime
socket: `set table TABLE key PREFIX-N data.server_id ID`, many commands
per connection (`prompt` mode, up to PER_LINE `;`-separated commands per
line), paced every TICK seconds. Run by bench/stick.py as its own process
(so that the probes of the driver do not share its interpreter lock).

Prints one JSON line: offered rate, commands sent and answered, refused
answers, seconds from the first command to the last answer.
Python 3 standard library only.
"""

import argparse
import json
import socket
import sys
import threading
import time

PER_LINE = 500
TICK = 0.002


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", required=True)
    p.add_argument("--table", default="servers")
    p.add_argument("--rate", type=float, required=True, help="commands per second")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--prefix", default="w")
    p.add_argument("--servers", type=int, default=2, help="server ids 1..N, in turn")
    a = p.parse_args()

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(a.socket)
    s.sendall(b"prompt\n")
    answered = [0]
    refused = [0]
    first_refusal = [None]
    done = threading.Event()

    def read():
        # Answers are "\n> " when the command worked, "TEXT\n\n> " when not.
        buf = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
            parts = buf.split(b"> ")
            buf = parts.pop()
            for ans in parts:
                answered[0] += 1
                if ans.strip():
                    refused[0] += 1
                    first_refusal[0] = first_refusal[0] or ans.decode(errors="replace").strip()
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # The answer to `prompt` itself.
    while answered[0] < 1:
        time.sleep(0.001)
    answered[0] = 0

    total = int(a.rate * a.seconds)
    sent = 0
    t0 = time.perf_counter()
    while sent < total:
        due = min(total, int(a.rate * (time.perf_counter() - t0)))
        while sent < due:
            n = min(PER_LINE, due - sent)
            line = ";".join(
                f"set table {a.table} key {a.prefix}{i} data.server_id {1 + i % a.servers}"
                for i in range(sent, sent + n)
            )
            s.sendall(line.encode() + b"\n")
            sent += n
        time.sleep(TICK)
    t_sent = time.perf_counter()
    deadline = t_sent + 60
    while answered[0] < sent and time.perf_counter() < deadline:
        time.sleep(0.001)
    t_end = time.perf_counter()
    s.sendall(b"quit\n")
    done.wait(5)
    s.close()
    print(json.dumps({
        "offered": a.rate,
        "sent": sent,
        "answered": answered[0],
        "refused": refused[0],
        "first_refusal": first_refusal[0],
        "send_seconds": t_sent - t0,
        "seconds": t_end - t0,
    }))
    return 0 if answered[0] == sent and refused[0] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
