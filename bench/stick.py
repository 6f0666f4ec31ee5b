#!/usr/bin/env python3
"""Stick-table replication benchmarks: three real `shoal` nodes on loopback
(127.0.0.11-13), the cluster driver of bench/cluster.py reused.

Run by bench/stick.sh (which builds, starts the demo backends and fills in
bench/stick.cfg). Measures:
1. stick entries replicated per second: bench/stick_writer.py sends
   `set table` commands to node 1's runtime socket at fixed offered rates
   (50,000/s and more), then wrk through node 1 with a new X-Key on every
   request (`stick on req.hdr(X-Key)`: the request path's rate), while the
   `used` count of nodes 2 and 3 (`show table`) is sampled; then how long
   after each load stops they hold every entry;
2. visibility, under each load of part 1: a fresh key set on node 1, then
   the time until nodes 2 and 3 both show it (`show table servers key K`
   on connections kept open); p50/p99/max;
3. data-plane CPU per request with stickiness on, clustered node 1 against
   a standalone node, same config and load (10,000 client keys cycled).
Python 3 standard library only.
"""

import argparse
import json
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


class Cli:
    """A runtime-socket connection kept open in `prompt` mode."""

    def __init__(self, path, timeout=10.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.ask("prompt")

    def ask(self, line):
        """One command; its answer (without the prompt)."""
        self.s.sendall(line.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n> "):
            b = self.s.recv(65536)
            if not b:
                raise cb.BenchError(f"runtime socket closed after {line!r}")
            buf += b
        return buf[:-2].decode()

    def close(self):
        self.s.close()


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def used(node):
    """The `used` count of table `servers` on a node (a node too busy to
    answer within 30 s fails the run, saying so)."""
    try:
        out = runtime(os.path.join(node.dir, "admin.sock"), "show table", timeout=30.0)
    except socket.timeout:
        raise cb.BenchError(f"node {node.id}: `show table` not answered within 30 s")
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
        """Part 1 (rates) and part 2 (visibility), under each load: `set
        table` through node 1's runtime socket at each offered rate, then
        wrk through node 1's HTTP frontend (the request path's rate)."""
        a = self.args
        out = self.section(1)
        self.spread(False)
        rows, vis = [], []
        for rate in a.rates:
            cb.log(f"1. set table at {rate}/s offered")
            row, probes = self.under_load(f"w{rate}-", lambda p, r=rate: self.writer_run(p, r))
            rows.append((f"`set table` over node 1's runtime socket, {rate:,}/s offered", row))
            vis.append((f"`set table` at {rate:,}/s", probes))
        cb.log("1. HTTP through node 1 (wrk)")
        self.keys = 0
        row, probes = self.under_load("h", self.http_run)
        rows.append((f"HTTP through node 1 (`wrk -t1 -c{a.conns}`, a new X-Key per request)", row))
        vis.append(("HTTP (wrk)", probes))
        cb.log("1. restart of node 2 (kill -9) holding the tables")
        restart = self.restart_follower(self.nodes[2])
        out += [
            "### 1. Stick entries replicated per second",
            "",
            f"Each load runs {a.seconds_wrk:g} s and writes a new key with every command or request. "
            "`set table` rows: bench/stick_writer.py (its own process) sends `set table servers key K "
            "data.server_id N` in `prompt` mode on one connection to node 1 (the leader), up to 500 "
            "`;`-separated commands per line, paced every 2 ms. The HTTP row: wrk and bench/stick.lua "
            "through node 1's frontend. The `used` count of nodes 2 and 3 is sampled every 200 ms "
            "(`show table`).",
            "",
            "| load | load average | written/s on node 1 | replicated/s on node 2 | on node 3 | followers "
            "hold all entries after the load stops | entries written / on 2 / on 3 | dropped writes "
            "(node 1) |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, r in rows:
            out.append(f"| {label} | {r['load']} | {r['written']:.0f} | {r['rates'][0]:.0f} | {r['rates'][1]:.0f} "
                       f"| {cb.ms(r['caught_up'])} | {r['n']} / {r['got'][0]} / {r['got'][1]} "
                       f"| {r['dropped']} |")
        out += [
            "",
            "### 2. Visibility of a new entry on the other nodes (under each load of part 1)",
            "",
            "Every 20 ms a probe sets a fresh key on node 1 (`set table`, on its own connection); the clock "
            "starts when the command is sent. Nodes 2 and 3 are then asked `show table servers key K` every "
            "1 ms on connections kept open in `prompt` mode, until both show it. "
            "The figure is the later of the two nodes.",
            "",
            "| load | probes | p50 | p99 | max | not visible within 5 s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, probes in vis:
            finite = [p for p in probes if p != float("inf")]
            lost = len(probes) - len(finite)
            self.failed |= lost > 0 or not finite
            f = (lambda q: cb.ms(cb.pct(finite, q)) if finite else "-")
            out.append(f"| {label} | {len(probes)} | {f(0.5)} | {f(0.99)} "
                       f"| {cb.ms(max(finite)) if finite else '-'} | {lost} |")
        entries, listening, holding = restart
        out += [
            "",
            "### Restart of a follower holding the tables",
            "",
            "After the loads above, node 2 is killed with -9 and started again from its data directory, "
            "which rebuilds the state from its last snapshot and the log after it. *Listening*: from the "
            "start until it announces its cluster endpoint and admin API; *holds every entry*: until its "
            "`show table` counts what node 1's does.",
            "",
            "| entries in the table | listening | holds every entry |",
            "|---:|---:|---:|",
            f"| {entries} | {listening:.2f} s | {holding:.2f} s |",
            "",
        ]

    def restart_follower(self, node):
        """Kill `node` with -9 and start it again: the entries node 1
        holds, and the seconds until the restarted node listens and until
        it holds that many entries."""
        target = used(self.nodes[1])
        os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait()
        self.procs.live.remove(node.proc)
        t0 = now()
        node.start()
        listening = now() - t0
        deadline = now() + 120
        while True:
            try:
                if used(node) >= target:
                    break
            except (OSError, cb.BenchError):
                pass
            if now() > deadline:
                raise cb.BenchError(f"node {node.id} did not hold {target} entries within 120 s of its restart")
            time.sleep(0.01)
        holding = now() - t0
        cb.log(f"   node {node.id} listening after {listening:.2f} s, holds all {target} entries after {holding:.2f} s")
        self.settled()
        return target, listening, holding

    def spread(self, pinned):
        """Pin node 1 to core 0 and the other nodes to core 1 (part 3:
        one core is node 1's alone, so its CPU time is its own work), or
        let every node run on both cores (parts 1 and 2: the followers and
        the load generators must not starve on one core while node 1 has
        the other to itself)."""
        if not self.args.pinned:
            return
        for node in self.nodes.values():
            cores = ("0" if node.id == 1 else "1") if pinned else "0,1"
            subprocess.run(["taskset", "-a", "-p", "-c", cores, str(node.proc.pid)],
                           stdout=subprocess.DEVNULL, check=True)

    def writer_run(self, prefix, rate):
        """bench/stick_writer.py at `rate` for the run's seconds; the number
        of entries it wrote and the seconds it took."""
        a = self.args
        sock = os.path.join(self.nodes[1].dir, "admin.sock")
        cmd = [sys.executable, os.path.join(HERE, "stick_writer.py"), "--socket", sock,
                                 "--rate", str(rate), "--seconds", str(a.seconds_wrk), "--prefix", prefix]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        try:
            got = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise cb.BenchError(f"stick_writer failed: {res.stdout} {res.stderr}")
        if got["refused"] or got["answered"] != got["sent"]:
            raise cb.BenchError(f"stick_writer: {got}")
        return got["answered"], got["seconds"]

    def http_run(self, prefix):
        self.prefix = prefix
        n1 = self.nodes[1]
        got = self.wrk_run(n1.proc.pid, n1.frontend(), warmup=False)
        return got["n"], got["n"] / got["rps"]

    def under_load(self, prefix, load):
        """Run `load(prefix)` (it returns entries written and seconds)
        while sampling the followers' `used` and probing visibility;
        then wait until the followers hold everything node 1 has."""
        n1, others = self.nodes[1], [self.nodes[2], self.nodes[3]]
        before = {n.id: used(n) for n in [n1] + others}
        load_before = loadavg()
        samples, probes = [], []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append((now(), [used(n) for n in others]))
                time.sleep(0.2)

        def probe():
            writer = Cli(os.path.join(n1.dir, "admin.sock"))
            readers = {n.id: Cli(os.path.join(n.dir, "admin.sock")) for n in others}
            i = 0
            while not stop.is_set():
                i += 1
                key = f"{prefix}probe-{i}"
                t0 = now()
                writer.ask(f"set table servers key {key} data.server_id 1")
                pending = dict(readers)
                while pending and now() - t0 < 5.0:
                    for nid, cli in list(pending.items()):
                        if f"key={key} " in cli.ask(f"show table servers key {key}"):
                            del pending[nid]
                    if pending:
                        time.sleep(0.001)
                probes.append(now() - t0 if not pending else float("inf"))
                time.sleep(0.02)
            for c in [writer, *readers.values()]:
                c.close()

        threads = [threading.Thread(target=sample), threading.Thread(target=probe)]
        for t in threads:
            t.start()
        t_start = now()
        try:
            n, seconds = load(prefix)
        finally:
            t_end = now()
            stop.set()
            for t in threads:
                t.join()
        target = used(n1)
        deadline = now() + 60
        while any(used(n) < target for n in others) and now() < deadline:
            time.sleep(0.01)
        caught_up = now() - t_end
        after = {n.id: used(n) for n in others}
        during = [(t, u) for t, u in samples if t_start <= t <= t_end]
        rates = [0, 0]
        if len(during) >= 2:
            (ta, ua), (tb, ub) = during[0], during[-1]
            rates = [(ub[i] - ua[i]) / (tb - ta) for i in range(2)]
        cb.log(f"   written {n} in {seconds:.1f} s; followers got {[after[o.id] - before[o.id] for o in others]}, "
               f"caught up {caught_up:.1f} s after; visibility probes: {len(probes)}, "
               f"median {statistics.median(probes) if probes else float('nan'):.3f} s, "
               f"p99 {cb.pct(probes, 0.99) if probes else float('nan'):.3f} s")
        return ({"load": load_before, "written": n / seconds, "rates": rates, "caught_up": caught_up, "n": n,
                 "got": [after[o.id] - before[o.id] for o in others], "dropped": self.dropped(n1)},
                probes)

    # -- 3 --

    def cpu(self):
        a = self.args
        out = self.section(3)
        node1 = self.nodes[1]
        self.keys, self.prefix = 10_000, "c"
        self.spread(True)
        # The same state as the standalone node: an empty table (part 1
        # left a million entries in the cluster's).
        if runtime(os.path.join(node1.dir, "admin.sock"), "clear table servers").strip():
            raise cb.BenchError("clear table servers refused on node 1")
        deadline = now() + 60
        while any(used(n) for n in self.nodes.values()) and now() < deadline:
            time.sleep(0.05)
        self.settled()
        out += [
            "### 3. Data-plane CPU per request with stickiness on: clustered node 1 against standalone",
            "",
            f"`bench/stick.cfg`, `wrk -t1 -c{a.conns} -d{a.seconds_wrk:g}s -s bench/stick.lua` with 10,000 "
            "client keys cycled (each request refreshes its key's entry, which is replicated), after a "
            f"{a.warmup:g} s warm-up; measured proxy on core 0, the rest on core 1.",
            "",
            "Both start from an empty table (the cluster's is cleared first); the rounds alternate which "
            "runs first; the load average is read as each round starts.",
            "",
            "| round | load average | standalone µs/req | clustered µs/req | ratio | standalone req/s "
            "| clustered req/s |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        ratios = []
        for rnd in range(1, a.rounds + 1):
            order = ("standalone", "clustered") if rnd % 2 else ("clustered", "standalone")
            load = loadavg()
            got = {}
            for kind in order:
                cb.log(f"3. round {rnd}: {kind}")
                got[kind] = (self.standalone_run() if kind == "standalone"
                             else self.wrk_run(node1.proc.pid, node1.frontend()))
            s, c = got["standalone"], got["clustered"]
            ratios.append(c["us"] / s["us"])
            self.failed |= s["errors"] + c["errors"] > 0
            out.append(f"| {rnd} | {load} | {s['us']:.1f} | {c['us']:.1f} | {ratios[-1]:.3f} | {s['rps']:.0f} "
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
    p.add_argument("--rates", default="50000,100000",
                   help="offered `set table` rates of part 1, per second, comma-separated")
    p.add_argument("--head", action="append", default=[])
    args = p.parse_args()
    parts = set(args.parts.split(","))
    args.rates = [int(r) for r in args.rates.split(",") if r]
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
