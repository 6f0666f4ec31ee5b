#!/usr/bin/env python3
"""Cluster benchmarks: three real `shoal` nodes on loopback (127.0.0.11-13).

Run by bench/cluster.sh, which builds the binaries, starts the two demo
backends and writes the config; this driver starts and stops every `shoal`
process and prints the markdown report (see bench/README.md, "Cluster").
Python 3 standard library only.

Measures:
1. commit latency of weight changes through the leader's and a follower's
   admin API (sequential), and changes/s with N concurrent clients;
2. time from a change sent to one node until both other nodes show it;
3. leader failover after kill -9: time until a write through a survivor
   succeeds (the killed node is restarted from its data dir between trials);
4. data-plane CPU per request of a clustered node against a standalone one
   under the same wrk load.
"""

import argparse
import http.client
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

BACKEND = "servers"
FRONTEND = "bench_http"
NOTICE_TIMEOUT = 30.0
SETTLE_TIMEOUT = 60.0
IDLE_SECONDS = 5.0
now = time.perf_counter


def log(msg):
    print(f"cluster bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A step that did not work; the message says which."""


# --- statistics -------------------------------------------------------------


def pct(values, q):
    """Nearest-rank percentile of `values` (q in 0..1)."""
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


# --- processes --------------------------------------------------------------


class Procs:
    """Every process the driver starts, so that all of them are stopped at
    the end whatever happens. Their pids also go to a file that
    bench/cluster.sh reads, in case this driver itself is killed."""

    def __init__(self, pid_file):
        self.pid_file = pid_file
        self.live = []

    def spawn(self, argv, **kw):
        proc = subprocess.Popen(argv, **kw)
        self.live.append(proc)
        with open(self.pid_file, "a") as f:
            f.write(f"{proc.pid}\n")
        return proc

    def stop(self, proc, sig=signal.SIGTERM):
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self):
        for proc in list(self.live):
            self.stop(proc)


def wait_notice(proc, path, offset, pattern, timeout=NOTICE_TIMEOUT):
    """The first match of `pattern` in the log `path` after `offset`,
    waiting until it appears or the process ends."""
    deadline = now() + timeout
    regex = re.compile(pattern)
    while True:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        m = regex.search(text)
        if m:
            return m
        if proc.poll() is not None:
            raise BenchError(f"exited ({proc.returncode}) before printing /{pattern}/:\n{tail(path)}")
        if now() > deadline:
            raise BenchError(f"no /{pattern}/ within {timeout:.0f} s:\n{tail(path)}")
        time.sleep(0.02)


def last_notice(path, pattern):
    """The last match of `pattern` in the whole log."""
    with open(path, "rb") as f:
        text = f.read().decode(errors="replace")
    found = re.findall(pattern, text)
    return found[-1] if found else None


def tail(path, lines=20):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- admin API --------------------------------------------------------------


class Admin:
    """A keep-alive connection to one node's admin API."""

    def __init__(self, addr, token, timeout=10.0):
        host, port = addr.rsplit(":", 1)
        self.host, self.port, self.timeout = host, int(port), timeout
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn = None

    def call(self, method, path, body=None):
        """(status, bytes). A keep-alive connection the server closed while
        idle is reopened once; any other failure raises OSError or
        http.client.HTTPException."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            fresh = self.conn is None
            if fresh:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=self.headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def set_weight(self, server, weight):
        return self.call("PUT", f"/v1/backends/{BACKEND}/servers/{server}/weight", {"weight": weight})

    def weight(self, server):
        status, body = self.call("GET", f"/v1/backends/{BACKEND}/servers/{server}")
        if status != 200:
            raise BenchError(f"GET server {server}: {status} {body[:200]!r}")
        return json.loads(body)["weight"]

    def status(self):
        status, body = self.call("GET", "/v1/cluster")
        if status != 200:
            raise BenchError(f"GET /v1/cluster: {status} {body[:200]!r}")
        return json.loads(body)


def weight_ok(status, body, weight):
    """The answer of a weight change says it was applied with `weight`."""
    if status != 200:
        return False
    try:
        return json.loads(body)["weight"] == weight
    except (ValueError, KeyError):
        return False


class Weights:
    """Weights to set: consecutive values always differ (1..250 in turn),
    so every change is a real change that an observer can see arrive."""

    def __init__(self):
        self.i = 0
        self.lock = threading.Lock()

    def next(self):
        with self.lock:
            self.i += 1
            return 1 + self.i % 250


# --- the cluster ------------------------------------------------------------


class Node:
    """One cluster member: node N on 127.0.0.1N, ports picked by the
    kernel at first start and kept on restart (a member's addresses are
    part of the membership and must not change)."""

    def __init__(self, bench, node_id):
        self.bench = bench
        self.id = node_id
        self.ip = f"127.0.0.1{node_id}"
        self.dir = os.path.join(bench.work, f"node{node_id}")
        self.log = os.path.join(self.dir, "shoal.log")
        self.cluster_addr = None
        self.admin_addr = None
        self.proc = None
        os.makedirs(self.dir, exist_ok=True)

    def start(self, join=None):
        b = self.bench
        argv = b.pin(self.id == 1) + [
            b.shoal, "run", "-f", b.cfg,
            "--node-id", str(self.id),
            "--data-dir", os.path.join(self.dir, "data"),
            "--certs", os.path.join(b.work, f"certs{self.id}"),
            "--cluster-addr", self.cluster_addr or f"{self.ip}:0",
            "--admin", self.admin_addr or f"{self.ip}:0",
        ]
        if join:
            argv += ["--join", join]
        offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        env = dict(os.environ, NODE_IP=self.ip, SHOAL_ADMIN_TOKEN=b.token)
        with open(self.log, "ab") as out:
            self.proc = b.procs.spawn(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir, env=env)
        cluster = wait_notice(self.proc, self.log, offset, rf"node {self.id} cluster endpoint listening on (\S+)")
        admin = wait_notice(self.proc, self.log, offset, r"admin API listening on (\S+)")
        self.cluster_addr, self.admin_addr = cluster.group(1), admin.group(1)

    def frontend(self):
        """Where its frontend listens now (the last notice)."""
        addr = last_notice(self.log, rf"frontend '{FRONTEND}' listening on (\S+)")
        if addr is None:
            raise BenchError(f"node {self.id} announced no frontend:\n{tail(self.log)}")
        return addr

    def admin(self, timeout=10.0):
        return Admin(self.admin_addr, self.bench.token, timeout)


class Bench:
    def __init__(self, args):
        self.args = args
        self.shoal = args.shoal
        self.work = args.work
        self.cfg = args.config
        self.token = "bench-" + os.urandom(8).hex()
        self.procs = Procs(os.path.join(args.work, "shoal.pids"))
        self.weights = Weights()
        self.nodes = {}
        self.sections = {}
        self.failed = False

    def section(self, part):
        """The report lines of one measurement (printed in part order)."""
        return self.sections.setdefault(part, [])

    def pin(self, measured):
        """taskset prefix: the measured node (node 1, or the standalone
        one) on core 0, everything else on core 1, as bench/run.sh pins."""
        if not self.args.pinned:
            return []
        return ["taskset", "-c", "0" if measured else "1"]

    # -- setup --

    def certificates(self):
        ca = os.path.join(self.work, "ca")
        run([self.shoal, "cluster", "ca", "--out", ca])
        for n in (1, 2, 3):
            run([self.shoal, "cluster", "cert", "--ca", ca, "--node-id", str(n),
                 "--out", os.path.join(self.work, f"certs{n}")])

    def form(self):
        """Node 1 initializes the cluster; nodes 2 and 3 join it by
        themselves (--join); wait for 3 voters with equal state."""
        self.certificates()
        first = Node(self, 1)
        first.start()
        self.nodes[1] = first
        status, body = first.admin().call("POST", "/v1/cluster/init")
        if status != 200:
            raise BenchError(f"cluster init: {status} {body[:300]!r}")
        for n in (2, 3):
            node = Node(self, n)
            node.start(join=first.cluster_addr)
            self.nodes[n] = node
        leader = self.settled()
        log(f"3 voters, leader node {leader}")

    def settled(self, timeout=SETTLE_TIMEOUT):
        """Wait until every node is up and reports the same leader and all
        3 members as reachable voters with one state hash; the leader."""
        start = now()
        deadline = start + timeout
        why = "no answer yet"
        while now() < deadline:
            try:
                leader = self.agreed_leader()
                if leader is not None:
                    return leader
                why = "members disagree or lag"
            except (OSError, http.client.HTTPException, BenchError, ValueError) as e:
                why = str(e)
            if os.environ.get("BENCH_DEBUG"):
                log(f"  {now() - start:.2f} s")
            time.sleep(0.05)
        raise BenchError(f"cluster not settled within {timeout:.0f} s: {why}")

    def agreed_leader(self):
        leaders = set()
        for node in self.nodes.values():
            admin = node.admin(timeout=5)
            try:
                s = admin.status()
            finally:
                admin.close()
            members = s["members"]
            hashes = {m["state_hash"] for m in members}
            if (len(members) != 3 or any(m["role"] != "voter" or not m["reachable"] for m in members)
                    or len(hashes) != 1 or None in hashes or s["leader"] is None):
                if os.environ.get("BENCH_DEBUG"):
                    brief = " ".join(f"{m['id']}:{m['role'][0]}{'' if m['reachable'] else '!'}"
                                     f"a{m['applied']}l{m['lag']}h{(m['state_hash'] or '-')[:4]}" for m in members)
                    log(f"  node {node.id} says leader {s['leader']} term {s['term']}: {brief}")
                return None
            leaders.add(s["leader"])
        return leaders.pop() if len(leaders) == 1 else None

    def roles(self):
        leader = self.settled()
        followers = [n for n in sorted(self.nodes) if n != leader]
        return self.nodes[leader], [self.nodes[n] for n in followers]

    def stop(self):
        self.procs.stop_all()

    # -- 1. commit latency and throughput --

    def sequential(self, node, count, warmup=20):
        admin = node.admin()
        times, errors = [], 0
        for i in range(count + warmup):
            w = self.weights.next()
            t0 = now()
            try:
                status, body = admin.set_weight("s1", w)
            except (OSError, http.client.HTTPException) as e:
                status, body = None, str(e).encode()
            dt = now() - t0
            if not weight_ok(status, body, w):
                errors += 1
                log(f"weight change through node {node.id} failed: {status} {body[:200]!r}")
            elif i >= warmup:
                times.append(dt)
        admin.close()
        return times, errors

    def concurrent(self, node, clients, seconds):
        """Changes/s with `clients` keep-alive connections writing at once."""
        start = threading.Barrier(clients + 1)
        stop_at = [0.0]
        done, errors, times = [0] * clients, [0] * clients, [[] for _ in range(clients)]

        def client(k):
            admin = node.admin()
            start.wait()
            while now() < stop_at[0]:
                w = self.weights.next()
                t0 = now()
                try:
                    status, body = admin.set_weight("s1", w)
                except (OSError, http.client.HTTPException) as e:
                    status, body = None, str(e).encode()
                if status == 200:
                    done[k] += 1
                    times[k].append(now() - t0)
                else:
                    errors[k] += 1
            admin.close()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        t0 = now()
        stop_at[0] = t0 + seconds
        start.wait()
        for t in threads:
            t.join()
        elapsed = now() - t0
        all_times = [x for ts in times for x in ts]
        return sum(done) / elapsed, all_times, sum(errors)

    def commit_latency(self):
        a = self.args
        out = self.section(1)
        leader, followers = self.roles()
        out += [
            "### 1. Weight changes: commit latency and throughput",
            "",
            f"`PUT /v1/backends/{BACKEND}/servers/s1/weight`, each answered once committed and applied on the node asked.",
            "",
            "| through | changes | p50 | p99 | mean | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, node in (("leader", leader), ("follower", followers[0])):
            log(f"1. {a.changes} sequential changes through the {label} (node {node.id})")
            times, errors = self.sequential(node, a.changes)
            self.failed |= errors > 0 or not times
            if times:
                out.append(
                    f"| {label} (node {node.id}) | {len(times)} | {ms(pct(times, .5))} | {ms(pct(times, .99))} "
                    f"| {ms(statistics.mean(times))} | {errors} |")
            else:
                out.append(f"| {label} (node {node.id}) | 0 | FAILED | - | - | {errors} |")
        out += [
            "",
            f"Concurrent clients, {a.seconds_tput:g} s each (one keep-alive connection per client):",
            "",
            "| through | clients | changes/s | p50 | p99 | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, node in (("leader", leader), ("follower", followers[0])):
            for clients in a.clients:
                log(f"1. {clients} concurrent clients through the {label} (node {node.id}), {a.seconds_tput:g} s")
                rate, times, errors = self.concurrent(node, clients, a.seconds_tput)
                self.failed |= errors > 0 or not times
                if times:
                    out.append(
                        f"| {label} (node {node.id}) | {clients} | {rate:.0f} | {ms(pct(times, .5))} "
                        f"| {ms(pct(times, .99))} | {errors} |")
                else:
                    out.append(f"| {label} (node {node.id}) | {clients} | FAILED | - | - | {errors} |")
        out.append("")

    # -- 2. propagation --

    def propagation(self):
        a = self.args
        out = self.section(2)
        leader, followers = self.roles()
        out += [
            "### 2. From a change on one node to its effect on all",
            "",
            "From the moment the `PUT` is sent through node A until both other nodes show the new weight "
            f"(`GET /v1/backends/{BACKEND}/servers/s2`, polled back to back on a keep-alive connection each).",
            "",
            "| sent through (A) | observed on | changes | p50 | p99 | max | A answered (p50) | timeouts |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        cases = (("leader", leader, followers), ("follower", followers[0], [leader, followers[1]]))
        worst_p99 = 0.0
        for label, writer, observed in cases:
            log(f"2. {a.propagation} changes through the {label} (node {writer.id}), "
                f"observed on nodes {observed[0].id} and {observed[1].id}")
            seen, answered, timeouts = self.propagate(writer, observed, a.propagation)
            self.failed |= timeouts > 0 or not seen
            names = f"nodes {observed[0].id}, {observed[1].id}"
            if seen:
                worst_p99 = max(worst_p99, pct(seen, .99))
                out.append(
                    f"| {label} (node {writer.id}) | {names} | {len(seen)} | {ms(pct(seen, .5))} "
                    f"| {ms(pct(seen, .99))} | {ms(max(seen))} | {ms(pct(answered, .5))} | {timeouts} |")
            else:
                out.append(f"| {label} (node {writer.id}) | {names} | 0 | FAILED | - | - | - | {timeouts} |")
        verdict = "met" if worst_p99 < 0.1 and not self.failed else "MISSED"
        out += ["", f"Target p99 under 100 ms: {verdict}.", ""]

    def propagate(self, writer, observed, count, limit=5.0):
        """`count` changes through `writer`; for each, the time until every
        node in `observed` shows it, and the time the writer answered."""
        go = [threading.Event() for _ in observed]
        done = [threading.Event() for _ in observed]
        result = [None] * len(observed)
        target = {"weight": None, "t0": 0.0, "quit": False}

        def observe(k, node):
            admin = node.admin()
            while True:
                go[k].wait()
                go[k].clear()
                if target["quit"]:
                    break
                w, t0 = target["weight"], target["t0"]
                result[k] = None
                while now() - t0 < limit:
                    if admin.weight("s2") == w:
                        result[k] = now() - t0
                        break
                done[k].set()
            admin.close()

        threads = [threading.Thread(target=observe, args=(k, n), daemon=True) for k, n in enumerate(observed)]
        for t in threads:
            t.start()
        admin = writer.admin()
        seen, answered, timeouts = [], [], 0
        for _ in range(count):
            w = self.weights.next()
            target["weight"] = w
            for d in done:
                d.clear()
            target["t0"] = t0 = now()
            for g in go:
                g.set()
            status, body = admin.set_weight("s2", w)
            answer = now() - t0
            if not weight_ok(status, body, w):
                raise BenchError(f"weight change through node {writer.id}: {status} {body[:200]!r}")
            for d in done:
                if not d.wait(limit + 5):
                    raise BenchError("an observer stopped answering")
            if any(r is None for r in result):
                timeouts += 1
            else:
                seen.append(max(result))
                answered.append(answer)
        target["quit"] = True
        for g in go:
            g.set()
        for t in threads:
            t.join(limit + 5)
        admin.close()
        return seen, answered, timeouts

    # -- 3. failover --

    def failover(self):
        a = self.args
        out = self.section(3)
        out += [
            "### 3. Leader failover after kill -9",
            "",
            "The leader is killed; a survivor's admin API is asked for a weight change in a loop until one "
            "succeeds. *Failover* is from the kill to that success; *leader known* is when the other survivor's "
            "`/metrics` first names a new leader. The killed node is restarted from its data directory and the "
            "next trial waits for 3 voters with equal state hashes (*rejoined in*; *terms during rejoin* counts "
            "the elections the rejoining node caused).",
            "",
            "| trial | killed (leader) | written through | new leader | leader known | failover | attempts | rejoined in | terms during rejoin |",
            "|---:|---|---|---|---:|---:|---:|---:|---:|",
        ]
        times = []
        for trial in range(1, a.trials + 1):
            leader, followers = self.roles()
            writer, other = followers[trial % 2], followers[(trial + 1) % 2]
            log(f"3. trial {trial}: kill -9 node {leader.id}, write through node {writer.id}")
            row = self.failover_trial(leader, writer, other)
            times.append(row["failover"])
            out.append(
                f"| {trial} | node {leader.id} | node {writer.id} | node {row['leader']} "
                f"| {ms(row['known']) if row['known'] is not None else '-'} | {ms(row['failover'])} "
                f"| {row['attempts']} | {row['rejoined']:.1f} s | {row['elections']} |")
        med = statistics.median(times)
        verdict = "met" if med < 2.0 else "MISSED"
        out += ["", f"Median failover: {ms(med)} (spread {ms(min(times))} to {ms(max(times))}); "
                       f"target under 2 s: {verdict}.", ""]

    def failover_trial(self, leader, writer, other, limit=30.0):
        admin = writer.admin(timeout=limit)
        admin.weight("s1")  # an open connection: the first write pays no connect
        watcher = other.admin(timeout=2)
        watcher.call("GET", "/metrics")
        known = [None]
        stop = threading.Event()
        t_kill = [0.0]

        def watch():
            # When the other survivor first names a leader other than the
            # killed one.
            while not stop.is_set():
                try:
                    _, body = watcher.call("GET", "/metrics")
                    m = re.search(rb"^shoal_cluster_leader\{[^}]*\} (-?\d+)", body, re.M)
                    if m and int(m.group(1)) not in (-1, leader.id):
                        known[0] = now() - t_kill[0]
                        return
                except (OSError, http.client.HTTPException):
                    pass
                time.sleep(0.005)

        w = self.weights.next()
        t_kill[0] = now()
        os.kill(leader.proc.pid, signal.SIGKILL)
        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        attempts = 0
        while True:
            attempts += 1
            try:
                status, body = admin.set_weight("s1", w)
            except (OSError, http.client.HTTPException) as e:
                status, body = None, str(e).encode()
            if weight_ok(status, body, w):
                break
            if now() - t_kill[0] > limit:
                raise BenchError(f"no write succeeded within {limit:.0f} s of the kill: {status} {body[:200]!r}")
            time.sleep(0.005)
        took = now() - t_kill[0]
        thread.join(5)
        stop.set()
        admin.close()
        watcher.close()
        leader.proc.wait()
        self.procs.live.remove(leader.proc)
        after = writer.admin().status()
        t_restart = now()
        leader.start()
        self.settled()
        rejoined = now() - t_restart
        term = writer.admin().status()["term"]
        return {"failover": took, "attempts": attempts, "leader": after["leader"],
                "known": known[0], "rejoined": rejoined, "elections": term - after["term"]}

    # -- 4. data-plane CPU --

    def data_plane(self):
        a = self.args
        out = self.section(4)
        node1 = self.nodes[1]
        # Parts 1 and 2 left other weights: back to the file's (1 each),
        # so both proxies balance alike.
        admin = node1.admin()
        for server in ("s1", "s2"):
            status, body = admin.set_weight(server, 1)
            if not weight_ok(status, body, 1):
                raise BenchError(f"resetting the weight of {server}: {status} {body[:200]!r}")
        admin.close()
        leader = self.settled()
        role = "leader" if leader == 1 else "follower"
        out += [
            "### 4. Data-plane CPU per request: clustered node against standalone",
            "",
            f"Same config (`bench/cluster.cfg`: HTTP, keep-alive, round robin over 2 demo backends, nbthread 1); "
            f"`wrk -t1 -c{a.conns} -d{a.seconds_wrk:g}s` after a {a.warmup:g} s warm-up. The measured proxy "
            "is pinned to core 0; wrk, the backends and the other two cluster nodes to core 1. "
            f"Node 1 is the {role} here. CPU µs/req: the proxy process's user+sys time over the run "
            "divided by the requests served.",
            "",
            "| round | standalone µs/req | clustered µs/req | ratio | standalone req/s | clustered req/s "
            "| standalone CPU % | clustered CPU % | errors |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        # What each costs with no traffic at all: a fixed cost per second
        # (Raft heartbeats, QUIC keep-alives, sled's flusher) weighs more
        # per request the fewer requests the load generator manages.
        idle_s = self.standalone_run(idle=True)
        idle_c = self.idle_cpu(node1.proc.pid)
        ratios = []
        for rnd in range(1, a.rounds + 1):
            # Alternate which goes first, so drift over time hits both.
            order = ("standalone", "clustered") if rnd % 2 else ("clustered", "standalone")
            got = {}
            for kind in order:
                log(f"4. round {rnd}: {kind}")
                if kind == "standalone":
                    got[kind] = self.standalone_run()
                else:
                    got[kind] = self.wrk_run(node1.proc.pid, node1.frontend())
            s, c = got["standalone"], got["clustered"]
            ratio = c["us"] / s["us"]
            ratios.append(ratio)
            errs = s["errors"] + c["errors"]
            self.failed |= errs > 0
            out.append(
                f"| {rnd} | {s['us']:.1f} | {c['us']:.1f} | {ratio:.3f} | {s['rps']:.0f} | {c['rps']:.0f} "
                f"| {s['cpu']:.0f}% | {c['cpu']:.0f}% | {errs} |")
        med = statistics.median(ratios)
        verdict = "met" if med <= 1.05 else "MISSED"
        out += ["", f"Median ratio clustered/standalone: {med:.3f} (rounds {min(ratios):.3f} to "
                       f"{max(ratios):.3f}); target within 5%: {verdict}.",
                "", f"With no traffic, over {IDLE_SECONDS:g} s: standalone {idle_s:.1f} ms CPU/s, "
                f"clustered node 1 {idle_c:.1f} ms CPU/s.", ""]

    def idle_cpu(self, pid):
        """CPU ms per second of a process left alone for IDLE_SECONDS."""
        c0, t0 = cpu_ticks(pid), now()
        time.sleep(IDLE_SECONDS)
        c1, t1 = cpu_ticks(pid), now()
        return (c1 - c0) / os.sysconf("SC_CLK_TCK") * 1000 / (t1 - t0)

    def standalone_run(self, idle=False):
        d = os.path.join(self.work, "standalone")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "shoal.log")
        offset = os.path.getsize(path) if os.path.exists(path) else 0
        env = dict(os.environ, NODE_IP="127.0.0.1")
        env.pop("SHOAL_ADMIN_TOKEN", None)
        with open(path, "ab") as out:
            proc = self.procs.spawn(self.pin(True) + [self.shoal, "run", "-f", self.cfg],
                                    stdout=out, stderr=subprocess.STDOUT, cwd=d, env=env)
        try:
            addr = wait_notice(proc, path, offset, rf"frontend '{FRONTEND}' listening on (\S+)").group(1)
            if idle:
                wait_serving(addr)
                return self.idle_cpu(proc.pid)
            return self.wrk_run(proc.pid, addr)
        finally:
            self.procs.stop(proc)

    def wrk_run(self, pid, addr):
        a = self.args
        url = f"http://{addr}/"
        wait_serving(addr)
        wrk = self.pin(False) + ["wrk", "-t1", f"-c{a.conns}"]
        subprocess.run(wrk + [f"-d{a.warmup:g}s", url], stdout=subprocess.DEVNULL, check=False)
        c0, t0 = cpu_ticks(pid), now()
        out = subprocess.run(wrk + [f"-d{a.seconds_wrk:g}s", url], capture_output=True, text=True, check=False).stdout
        c1, t1 = cpu_ticks(pid), now()
        reqs = re.search(r"(\d+) requests in", out)
        if not reqs or int(reqs.group(1)) == 0:
            raise BenchError(f"wrk served no request through {addr}:\n{out}")
        n = int(reqs.group(1))
        errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
        sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if sock:
            errors += sum(int(x) for x in sock.groups())
        hz = os.sysconf("SC_CLK_TCK")
        busy = (c1 - c0) / hz
        return {"us": busy * 1e6 / n, "rps": n / (t1 - t0), "cpu": busy / (t1 - t0) * 100, "errors": errors}

    # -- report --

    def report(self, head):
        lines = [line for part in sorted(self.sections) for line in self.sections[part]]
        text = "\n".join(head + [""] + lines)
        print(text)
        os.makedirs(os.path.dirname(self.args.results), exist_ok=True)
        with open(self.args.results, "w") as f:
            f.write(text + "\n")


def cpu_ticks(pid):
    """user+sys clock ticks of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After "pid (comm)": state is field 3, utime 14 and stime 15.
    return int(fields[11]) + int(fields[12])


def wait_serving(addr, timeout=10.0):
    """Until the proxy at addr answers 200."""
    host, port = addr.rsplit(":", 1)
    deadline = now() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=1)
            conn.request("GET", "/")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        if now() > deadline:
            raise BenchError(f"{addr} does not answer 200 within {timeout:.0f} s")
        time.sleep(0.05)


def run(argv):
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: {done.stderr.strip()}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shoal", required=True)
    p.add_argument("--config", required=True, help="bench/cluster.cfg with the backends filled in")
    p.add_argument("--work", required=True, help="scratch directory")
    p.add_argument("--results", required=True)
    p.add_argument("--changes", type=int, default=500)
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    p.add_argument("--seconds-tput", type=float, default=5)
    p.add_argument("--propagation", type=int, default=200)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds-wrk", type=float, default=10)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--pinned", action="store_true")
    p.add_argument("--parts", default="1,2,3,4", help="which measurements to run")
    p.add_argument("--head", action="append", default=[], help="a line for the report's head")
    args = p.parse_args()
    parts = set(args.parts.split(","))

    bench = Bench(args)
    # SIGTERM (cluster.sh's trap) ends the driver through its finally.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench.form()
        if "1" in parts:
            bench.commit_latency()
        if "2" in parts:
            bench.propagation()
        # The data plane before the failovers: node 1 is still the leader
        # that formed the cluster (the busier role).
        if "4" in parts:
            bench.data_plane()
        if "3" in parts:
            bench.failover()
    except BenchError as e:
        log(f"FAILED: {e}")
        bench.section(9).append(f"FAILED: {e}".splitlines()[0])
        bench.failed = True
    finally:
        bench.stop()
    bench.report(args.head)
    return 1 if bench.failed else 0


if __name__ == "__main__":
    sys.exit(main())
