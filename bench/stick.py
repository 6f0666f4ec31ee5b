#!/usr/bin/env python3
"""Stick-table replication benchmarks: three real `shoal` nodes on loopback
(127.0.0.11-13), the cluster driver of bench/cluster.py reused.

Run by bench/stick.sh (which builds, starts the demo backends and fills in
bench/stick.cfg). Measures:
1. stick entries replicated per second: wrk through node 1 with a new
   X-Key on every request (`stick on req.hdr(X-Key)`), while the `used`
   count of nodes 2 and 3 (`show table` on their runtime sockets) is
   sampled; then how long after the load stops they hold every entry;
2. visibility: a request with a fresh key through node 1, then the time
   until nodes 2 and 3 both show the key (`show table servers key K`),
   repeated while the wrk load of part 1 runs; p50/p99/max;
3. data-plane CPU per request with stickiness on, clustered node 1 against
   a standalone node, same config and load (10,000 client keys cycled).
Python 3 standard library only.
"""

import argparse
import http.client
import re
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as cb  # noqa: E402  (the cluster driver: nodes, wrk, CPU)

now = time.perf_counter
HERE = os.path.dirname(os.path.abspath(__file__))


def runtime(path, line, timeout=5.0):
    """One runtime-API command on a unix socket; the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode()


def used(node):
    """The `used` count of table `servers` on a node."""
    out = runtime(os.path.join(node.dir, "admin.sock"), "show table")
    for line in out.splitlines():
        if line.startswith("# table: servers,"):
            return int(line.rsplit("used:", 1)[1])
    raise cb.BenchError(f"node {node.id}: no table in {out!r}")


class StickBench(cb.Bench):
    def __init__(self, args):
        super().__init__(args)
        self.keys = 0
        self.prefix = "k"

    def wrk_run(self, pid, addr, seconds=None, warmup=True):
        """bench/cluster.py's run with bench/stick.lua (keys vary)."""
        a = self.args
        url = f"http://{addr}/"
        cb.wait_serving(addr)
        env = dict(os.environ, STICK_KEYS=str(self.keys), STICK_PREFIX=self.prefix)
        wrk = self.pin(False) + ["wrk", "-t1", f"-c{a.conns}", "-s", os.path.join(HERE, "stick.lua")]
        if warmup:
            subprocess.run(wrk + [f"-d{a.warmup:g}s", url], stdout=subprocess.DEVNULL, check=False, env=env)
        c0, t0 = cb.cpu_ticks(pid), now()
        out = subprocess.run(wrk + [f"-d{seconds or a.seconds_wrk:g}s", url],
                             capture_output=True, text=True, check=False, env=env).stdout
        c1, t1 = cb.cpu_ticks(pid), now()
        n = int(re.search(r"(\d+) requests in", out).group(1)) if "requests in" in out else 0
        if n == 0:
            raise cb.BenchError(f"wrk served no request through {addr}:\n{out}")
        errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
        busy = (c1 - c0) / os.sysconf("SC_CLK_TCK")
        return {"us": busy * 1e6 / n, "rps": n / (t1 - t0), "cpu": busy / (t1 - t0) * 100,
                "errors": errors, "n": n}

    def dropped(self, node):
        _, body = node.admin().call("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith("shoal_stick_writes_dropped_total"):
                return int(float(line.split()[-1]))
        return None

    # -- 1 and 2 --

    def replication(self):
        a = self.args
        n1, others = self.nodes[1], [self.nodes[2], self.nodes[3]]
        out = self.section(1)
        self.keys, self.prefix = 0, "r"
        before = {n.id: used(n) for n in others}
        samples = []
        probes = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append((now(), [used(n) for n in others]))
                time.sleep(0.1)

        def probe():
            # One probe at a time through node 1, then poll nodes 2 and 3.
            host, port = n1.frontend().rsplit(":", 1)
            i = 0
            while not stop.is_set():
                i += 1
                key = f"probe-{i}"
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                conn.request("GET", "/", headers={"X-Key": key})
                conn.getresponse().read()
                conn.close()
                t0 = now()
                pending = {n.id: os.path.join(n.dir, "admin.sock") for n in others}
                while pending and now() - t0 < 5.0:
                    for nid, path in list(pending.items()):
                        if f"key={key} " in runtime(path, f"show table servers key {key}"):
                            del pending[nid]
                    if pending:
                        time.sleep(0.002)
                probes.append(now() - t0 if not pending else float("inf"))
                time.sleep(0.02)

        threads = [threading.Thread(target=sample), threading.Thread(target=probe)]
        for t in threads:
            t.start()
        t_start = now()
        try:
            got = self.wrk_run(n1.proc.pid, n1.frontend(), seconds=a.seconds_wrk, warmup=False)
        finally:
            t_end = now()
            stop.set()
            for t in threads:
                t.join()
        # Until both followers hold everything node 1 wrote.
        target = used(n1)
        deadline = now() + 60
        while any(used(n) < target for n in others) and now() < deadline:
            time.sleep(0.01)
        caught_up = now() - t_end
        after = {n.id: used(n) for n in others}
        during = [(t, u) for t, u in samples if t_start <= t <= t_end]
        rates = []
        if len(during) >= 2:
            (ta, ua), (tb, ub) = during[0], during[-1]
            rates = [(ub[i] - ua[i]) / (tb - ta) for i in range(2)]
        finite = [p for p in probes if p != float("inf")]
        lost = len(probes) - len(finite)
        out += [
            "### 1. Stick entries replicated per second",
            "",
            f"`wrk -t1 -c{a.conns} -d{a.seconds_wrk:g}s -s bench/stick.lua` through node 1 (leader, pinned to "
            "core 0), a new X-Key on every request: every request writes one new entry. The `used` count of "
            "nodes 2 and 3 is sampled every 100 ms.",
            "",
            "| entries written/s (node 1 req/s) | replicated/s on node 2 | on node 3 | followers hold all "
            "entries after the load stops | entries on 2 / 3 at the end | dropped writes (node 1) |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {got['rps']:.0f} | {rates[0] if rates else 0:.0f} | {rates[1] if rates else 0:.0f} "
            f"| {cb.ms(caught_up)} | {after[2] - before[2]} / {after[3] - before[3]} "
            f"| {self.dropped(n1)} |",
            "",
            "### 2. Visibility of a new entry on the other nodes (under the load of part 1)",
            "",
            "A request with a fresh key through node 1, answered; then `show table servers key K` on "
            "nodes 2 and 3 every 2 ms until both show it.",
            "",
            "| probes | p50 | p99 | max | not visible within 5 s |",
            "|---:|---:|---:|---:|---:|",
            f"| {len(probes)} | {cb.ms(cb.pct(finite, 0.5)) if finite else '-'} "
            f"| {cb.ms(cb.pct(finite, 0.99)) if finite else '-'} | {cb.ms(max(finite)) if finite else '-'} "
            f"| {lost} |",
            "",
        ]
        self.failed |= lost > 0

    # -- 3 --

    def cpu(self):
        a = self.args
        out = self.section(3)
        node1 = self.nodes[1]
        self.keys, self.prefix = 10_000, "c"
        self.settled()
        out += [
            "### 3. Data-plane CPU per request with stickiness on: clustered node 1 against standalone",
            "",
            f"`bench/stick.cfg`, `wrk -t1 -c{a.conns} -d{a.seconds_wrk:g}s -s bench/stick.lua` with 10,000 "
            "client keys cycled (each request refreshes its key's entry, which is replicated), after a "
            f"{a.warmup:g} s warm-up; measured proxy on core 0, the rest on core 1.",
            "",
            "| round | standalone µs/req | clustered µs/req | ratio | standalone req/s | clustered req/s |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        ratios = []
        for rnd in range(1, a.rounds + 1):
            order = ("standalone", "clustered") if rnd % 2 else ("clustered", "standalone")
            got = {}
            for kind in order:
                cb.log(f"3. round {rnd}: {kind}")
                got[kind] = (self.standalone_run() if kind == "standalone"
                             else self.wrk_run(node1.proc.pid, node1.frontend()))
            s, c = got["standalone"], got["clustered"]
            ratios.append(c["us"] / s["us"])
            self.failed |= s["errors"] + c["errors"] > 0
            out.append(f"| {rnd} | {s['us']:.1f} | {c['us']:.1f} | {ratios[-1]:.3f} | {s['rps']:.0f} "
                       f"| {c['rps']:.0f} |")
        med = statistics.median(ratios)
        out += ["", f"Median ratio clustered/standalone: {med:.3f}; target within 10%: "
                    f"{'met' if med <= 1.10 else 'MISSED'}.", ""]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shoal", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds-wrk", type=float, default=10)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--pinned", action="store_true")
    p.add_argument("--parts", default="1,3")
    p.add_argument("--head", action="append", default=[])
    args = p.parse_args()
    parts = set(args.parts.split(","))
    bench = StickBench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench.form()
        if "1" in parts:
            bench.replication()
        if "3" in parts:
            bench.cpu()
    except cb.BenchError as e:
        cb.log(f"FAILED: {e}")
        bench.section(9).append(f"FAILED: {e}".splitlines()[0])
        bench.failed = True
    finally:
        bench.stop()
    bench.report(args.head)
    return 1 if bench.failed else 0


if __name__ == "__main__":
    sys.exit(main())
