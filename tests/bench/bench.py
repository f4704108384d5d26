#!/usr/bin/python3
"""Benchmark driver for sluice: direct vs HAProxy vs a bare forwarder vs sluice.

Started by tests/bench/run.sh (which builds the binaries and documents the knobs); it can be
run by hand too, see --help. It starts a scratch MariaDB and the proxies in front of it, runs
interleaved rounds of sysbench and a large-blob test, optionally the idle-sessions memory test
and the framer micro-benchmark, prints a table and writes it as markdown (+ raw JSON).

Everything it starts is killed and the scratch datadir removed on exit, whatever the exit path
(normal, exception, SIGINT/SIGTERM/SIGHUP). Children also get PR_SET_PDEATHSIG so that even a
SIGKILLed driver leaves no server running; run.sh then removes the work dir.
"""
import argparse
import concurrent.futures
import ctypes
import datetime
import json
import os
import platform
import random
import re
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

try:
    import pymysql
except ImportError:  # pragma: no cover - reported clearly at start-up
    pymysql = None

CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20


def env_int(name, default):
    v = os.environ.get(name, "")
    try:
        return int(v) if v.strip() else default
    except ValueError:
        raise SystemExit(f"bench: {name}={v!r} is not an integer")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A step failed; the message says which and where its log is."""


class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(f"signal {signal.Signals(signum).name}")


# --------------------------------------------------------------------------- processes

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    # Die with the driver even if it is SIGKILLed (PR_SET_PDEATHSIG = 1).
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


class Procs:
    """Owns every process the benchmark starts; stop_all() is idempotent."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.items = {}  # name -> (Popen, log path)

    def start(self, name, argv, log_name=None):
        path = os.path.join(self.workdir, log_name or f"{name}.log")
        f = open(path, "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                 start_new_session=True, preexec_fn=_child_setup, cwd=self.workdir)
        except OSError as e:
            raise BenchError(f"cannot start {name} ({argv[0]}): {e}")
        finally:
            f.close()
        self.items[name] = (p, path)
        return p

    def pid(self, name):
        return self.items[name][0].pid

    def alive(self, name):
        return name in self.items and self.items[name][0].poll() is None

    def log_tail(self, name, lines=20):
        try:
            with open(self.items[name][1], "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 8192))
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except (OSError, KeyError):
            return "(no log)"

    def stop(self, name, timeout=15):
        if name not in self.items:
            return
        p, _ = self.items.pop(name)
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{name} (pid {p.pid}) ignored SIGTERM for {timeout}s; killing it")
                p.kill()
                p.wait(10)
            except ProcessLookupError:
                pass

    def stop_all(self):
        for name in reversed(list(self.items)):
            try:
                self.stop(name)
            except Exception as e:  # keep going: everything else must still be stopped
                log(f"stopping {name}: {e}")


def run_cmd(argv, timeout, what, **kw):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, preexec_fn=_child_setup, **kw)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: timed out after {timeout}s: {' '.join(argv)}")
    except OSError as e:
        raise BenchError(f"{what}: cannot run {argv[0]}: {e}")
    if r.returncode != 0:
        raise BenchError(f"{what} failed (exit {r.returncode}): {' '.join(argv)}\n"
                         f"{(r.stdout + r.stderr)[-3000:]}")
    return r.stdout


# --------------------------------------------------------------------------- /proc

def stat_cpu_us(pid):
    """utime+stime of the whole process (all threads, live and exited) in microseconds; the
    kernel keeps them in clock ticks (10 ms here)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000 // CLK_TCK


def sched_cpu_us(pid):
    """The same CPU time with nanosecond resolution: the sum of every live thread's run time
    (/proc/PID/task/TID/schedstat). Misses threads that exited, so it is checked against
    stat_cpu_us (see CpuMeter)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            pass  # the thread exited meanwhile
    return total / 1000


class CpuMeter:
    """CPU time a process spends between start() and stop(), in microseconds: utime+stime
    (/proc/PID/stat), taken at nanosecond resolution from schedstat when that is available and
    agrees with the tick count (it would not if a thread exited in between)."""

    def __init__(self, pid):
        self.pid = pid
        self.precise = os.path.exists(f"/proc/{pid}/task/{pid}/schedstat")
        self.s0 = stat_cpu_us(pid)
        self.n0 = sched_cpu_us(pid) if self.precise else None
        self.ticks_us = self.us = None

    def stop(self):
        self.ticks_us = stat_cpu_us(self.pid) - self.s0
        self.us = self.ticks_us
        if self.precise:
            precise = sched_cpu_us(self.pid) - self.n0
            # Tick accounting is exact to about two ticks per thread; beyond that a thread has exited.
            if abs(precise - self.ticks_us) <= 0.05 * self.ticks_us + 4 * 1_000_000 / CLK_TCK:
                self.us = precise
        return self.us


def cpu_us(pid):
    return stat_cpu_us(pid)


def proc_field(path, key):
    """The number after "key:" in a /proc file such as /proc/PID/status or /proc/meminfo (kB there)."""
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def status_kib(pid, key):
    return proc_field(f"/proc/{pid}/status", key)


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def reset_hwm(pid):
    """Resets VmHWM (peak RSS) so the next read is the peak since now; False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class BlobClient:
    """tests/bench/blob_client.c, one command line in, one reply line out, each with a timeout."""

    def __init__(self, binary, port, mb, log_path, timeout=120):
        self.timeout = timeout
        self.buf = b""
        with open(log_path, "ab") as err:
            self.p = subprocess.Popen([binary, str(port), str(mb)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=err, preexec_fn=_child_setup)
        self.log_path = log_path
        line = self._read_line()
        if line != "ready":
            self.close()
            raise BenchError(f"blob_client via port {port}: {line}")

    def _read_line(self):
        deadline = time.monotonic() + self.timeout
        fd = self.p.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"blob_client: no answer within {self.timeout}s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise BenchError(f"blob_client exited (status {self.p.wait(5)}); see {self.log_path}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def cmd(self, command):
        self.p.stdin.write(command.encode() + b"\n")
        self.p.stdin.flush()
        line = self._read_line()
        if not line.startswith("ok"):
            raise BenchError(f"blob_client {command}: {line}")
        return line.split()[1:]

    def close(self):
        try:
            if self.p.poll() is None:
                self.p.stdin.write(b"quit\n")
                self.p.stdin.flush()
                self.p.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait(5)


class RssSampler(threading.Thread):
    """Samples VmRSS of a pid every `period` seconds; .peak is the largest seen (KiB)."""

    def __init__(self, pid, period=0.05):
        super().__init__(daemon=True)
        self.pid, self.period, self.peak = pid, period, 0
        self._stop_evt = threading.Event()

    def run(self):
        while not self._stop_evt.is_set():
            try:
                self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
            except OSError:
                return
            self._stop_evt.wait(self.period)

    def stop(self):
        self._stop_evt.set()
        self.join(2)


# --------------------------------------------------------------------------- networking

_used_ports = set()


def free_port():
    """A free loopback port below the ephemeral range, so no outgoing connection can hold it."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    if low <= 11000:
        low = 32768
    for _ in range(500):
        port = random.randrange(10000, low)
        if port in _used_ports:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _used_ports.add(port)
        return port
    raise BenchError("no free loopback port found")


def wait_port(port, timeout, procs=None, name=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if procs is not None and not procs.alive(name):
            raise BenchError(f"{name} exited during start-up:\n{procs.log_tail(name)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{name or 'port'} 127.0.0.1:{port} not accepting after {timeout}s"
                     + (f":\n{procs.log_tail(name)}" if procs else ""))


def connect(port, db="sbtest", timeout=20, **kw):
    return pymysql.connect(host="127.0.0.1", port=port, user="root", password="", database=db,
                           connect_timeout=timeout, read_timeout=300, write_timeout=300,
                           max_allowed_packet=512 * MiB, **kw)


# --------------------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.a = args
        self.workdir = args.workdir
        self.procs = Procs(self.workdir)
        self.db_port = None
        self.targets = {}  # name -> {"kind", "port", "argv" (not for direct), "workers", "metrics_port"}
        self.crashes = {}  # target -> count of times it was found dead and restarted
        self.notes = []  # odd things seen, for the report
        self.ignored_errors = []  # runs in which sysbench ignored (deadlock) errors
        self.info = {}
        self.results = {"sysbench": [], "blob": [], "idle": [], "micro": []}

    # ----- set-up

    def machine_info(self):
        def first_line(argv):
            try:
                return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
            except Exception:
                return "?"
        model = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        mem = proc_field("/proc/meminfo", "MemTotal")
        commit = first_line(["git", "-C", self.a.repo, "rev-parse", "--short", "HEAD"])
        dirty = subprocess.run(["git", "-C", self.a.repo, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        self.info = {
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "host": platform.node(),
            "nproc": os.cpu_count(),
            "cpu": model,
            "mem_gib": round(mem / MiB, 1) if mem else "?",
            "kernel": platform.release(),
            "mariadb": first_line(["mariadbd", "--version"]),
            "haproxy": first_line(["haproxy", "-v"]),
            "sysbench": first_line(["sysbench", "--version"]),
            "sluice": first_line([self.a.sluice, "--version"]),
            "sluice_bin": self.a.sluice,
            "commit": (commit if commit not in ("", "?") and "fatal" not in commit else "no commit yet") + (" + local changes" if dirty else ""),
            "loadavg_start": open("/proc/loadavg").read().split()[:3],
        }

    def start_mariadb(self):
        datadir = os.path.join(self.workdir, "db")
        os.makedirs(datadir)
        user = ["--user=root"] if os.geteuid() == 0 else []
        run_cmd(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", *user,
                 "--auth-root-authentication-method=normal", "--skip-test-db",
                 "--innodb-log-file-size=512M"], 300, "mariadb-install-db")
        self.db_port = free_port()
        maxconn = max(2000, self.a.idle_n + 1000)
        sock = os.path.join(self.workdir, "mysqld.sock")
        argv = ["mariadbd", "--no-defaults", f"--datadir={datadir}", *user, f"--port={self.db_port}",
                f"--socket={sock}", "--bind-address=127.0.0.1", f"--pid-file={self.workdir}/mysqld.pid",
                f"--tmpdir={self.workdir}", f"--max-connections={maxconn}", "--max-allowed-packet=256M",
                "--open-files-limit=20000", "--innodb-buffer-pool-size=512M", "--innodb-log-file-size=512M",
                # The server's durability work is the same for every target and only adds noise.
                "--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0", "--skip-log-bin",
                "--skip-name-resolve", "--thread-cache-size=256", "--back-log=4096",
                "--performance-schema=OFF"]
        self.procs.start("mariadbd", argv)
        deadline = time.monotonic() + 120
        while True:
            if not self.procs.alive("mariadbd"):
                raise BenchError(f"mariadbd exited during start-up:\n{self.procs.log_tail('mariadbd', 40)}")
            try:
                connect(self.db_port, db=None, timeout=2).close()
                break
            except pymysql.err.MySQLError:
                if time.monotonic() > deadline:
                    raise BenchError(f"mariadbd not ready after 120s:\n{self.procs.log_tail('mariadbd')}")
                time.sleep(0.2)
        c = connect(self.db_port, db=None)
        with c.cursor() as cur:
            cur.execute("CREATE DATABASE sbtest")
            cur.execute("SELECT @@max_connections, @@open_files_limit, @@version")
            mc, ofl, ver = cur.fetchone()
        c.close()
        if mc < maxconn:
            self.notes.append(f"MariaDB lowered max_connections to {mc} (open_files_limit {ofl})")
        log(f"mariadbd {ver} ready on 127.0.0.1:{self.db_port} (max_connections {mc}, open_files_limit {ofl})")

    def sysbench_common(self, port):
        return ["--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={port}", "--mysql-user=root",
                "--mysql-db=sbtest", f"--tables={self.a.tables}", f"--table-size={self.a.table_size}"]

    def prepare_data(self):
        log(f"sysbench prepare: {self.a.tables} tables x {self.a.table_size} rows")
        run_cmd(["sysbench", "oltp_read_write", *self.sysbench_common(self.db_port), "--threads=2", "prepare"],
                600, "sysbench prepare")
        run_cmd(["sysbench", "oltp_read_write", *self.sysbench_common(self.db_port), "--threads=2", "prewarm"],
                600, "sysbench prewarm")
        c = connect(self.db_port)
        with c.cursor() as cur:
            cur.execute("CREATE TABLE blobs (id INT AUTO_INCREMENT PRIMARY KEY, b LONGBLOB) ENGINE=InnoDB")
        c.close()

    def write_haproxy_cfg(self, port):
        path = os.path.join(self.workdir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(f"""# generated by tests/bench/bench.py
global
    nbthread 1
    maxconn {max(2000, self.a.idle_n + 500)}

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend bench
    bind 127.0.0.1:{port}
    default_backend db

backend db
    server db1 127.0.0.1:{self.db_port}
""")
        return path

    def write_sluice_cfg(self, name, port, metrics_port):
        path = os.path.join(self.workdir, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(f"""# generated by tests/bench/bench.py
workers: 1
metrics: {{ listen: 127.0.0.1:{metrics_port} }}
listeners:
  - name: main
    listen: 127.0.0.1:{port}
    upstreams: [127.0.0.1:{self.db_port}]
    max_allowed_packet: 256M
    max_connections: 20000
""")
        return path

    def define_targets(self):
        for name in self.a.targets:
            if name == "direct":
                self.targets[name] = {"kind": "direct", "port": self.db_port}
            elif name == "haproxy":
                port = free_port()
                self.targets[name] = {"kind": "haproxy", "port": port,
                                      "argv": ["haproxy", "-f", self.write_haproxy_cfg(port), "-db"]}
            elif name in ("floor", "floor-uring"):
                port = free_port()
                binary = self.a.floor if name == "floor" else self.a.floor_uring
                self.targets[name] = {"kind": "floor", "port": port,
                                      "argv": [binary, str(port), str(self.db_port)]}
            elif re.fullmatch(r"sluice(-nometrics)?-w\d+", name):
                # sluice-nometrics-wN: the same proxy built with -DSLUICE_METRICS=OFF, to show
                # what counting costs per query.
                workers = int(name.split("-w")[-1])
                binary = self.a.sluice_nometrics if "nometrics" in name else self.a.sluice
                port, mport = free_port(), free_port()
                cfg = self.write_sluice_cfg(name, port, mport)
                self.targets[name] = {"kind": "sluice", "port": port, "metrics_port": mport, "workers": workers,
                                      "argv": [binary, "--config", cfg, "--set", f"workers={workers}"]}
            else:
                raise BenchError(f"unknown target {name!r} (direct, haproxy, floor, floor-uring, sluice-wN, "
                                 "sluice-nometrics-wN)")

    def start_target(self, name):
        t = self.targets[name]
        if t["kind"] == "direct":
            return
        self.procs.start(name, t["argv"])
        wait_port(t["port"], 30, self.procs, name)
        # A real round trip through the proxy, not just an accepting socket.
        deadline = time.monotonic() + 30
        while True:
            try:
                c = connect(t["port"], timeout=5)
                with c.cursor() as cur:
                    cur.execute("SELECT 1")
                c.close()
                return
            except pymysql.err.MySQLError as e:
                if time.monotonic() > deadline or not self.procs.alive(name):
                    raise BenchError(f"{name}: SELECT 1 through it fails: {e}\n{self.procs.log_tail(name)}")
                time.sleep(0.2)

    def restart_target(self, name):
        self.snapshot_health(name, "before restart")
        self.procs.stop(name)
        self.start_target(name)

    # Counters that should stay at zero in a clean benchmark.
    BAD_METRICS = ("sluice_io_errors_total", "sluice_timeouts_total", "sluice_sequence_errors_total",
                   "sluice_response_tracking_lost_total", "sluice_connections_rejected_total",
                   "sluice_oversized_packets_total", "sluice_upstream_connect_errors_total",
                   "sluice_memory_limit_waits_total", "sluice_memory_limit_refusals_total",
                   "sluice_eintr_retries_total")

    def snapshot_health(self, name, when):
        """For a sluice target: its non-zero error counters from /metrics (this instance)."""
        t = self.targets.get(name, {})
        if t.get("kind") != "sluice" or not self.procs.alive(name):
            return
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{t['metrics_port']}/metrics", timeout=5) as r:
                text = r.read().decode(errors="replace")
        except OSError as e:
            self.notes.append(f"{name}: /metrics scrape failed ({when}): {e}")
            return
        bad = []
        for line in text.splitlines():
            if line.startswith(self.BAD_METRICS):
                try:
                    if float(line.rsplit(None, 1)[1]) > 0:
                        bad.append(line)
                except (ValueError, IndexError):
                    pass
        self.results.setdefault("health", []).append({"target": name, "when": when, "nonzero_error_metrics": bad})
        if bad:
            self.notes.append(f"{name} ({when}): non-zero error metrics: " + "; ".join(bad))

    def log_summary(self, name):
        """For a sluice target: session close reasons and warn/error lines from its log (all instances)."""
        if self.targets.get(name, {}).get("kind") != "sluice" or name not in self.procs.items:
            return
        reasons, problems = {}, []
        try:
            with open(self.procs.items[name][1], errors="replace") as f:
                for line in f:
                    m = re.search(r"\breason=(\S+)", line)
                    if "session_close" in line and m:
                        reasons[m.group(1)] = reasons.get(m.group(1), 0) + 1
                    parts = line.split(None, 2)
                    if len(parts) > 1 and parts[1].lower() in ("warn", "warning", "error", "fatal", "critical"):
                        problems.append(line.strip())
        except OSError:
            return
        self.results.setdefault("health", []).append({"target": name, "when": "log", "close_reasons": reasons,
                                                      "warnings": len(problems), "first_warnings": problems[:5]})
        log(f"{name}: session close reasons {reasons}; {len(problems)} warn/error log lines")
        if problems:
            self.notes.append(f"{name}: {len(problems)} warn/error log lines, e.g.: " + " | ".join(problems[:3]))

    def ensure_alive(self, name):
        """Before each run: a proxy found dead is reported, counted and restarted."""
        t = self.targets[name]
        if t["kind"] == "direct" or self.procs.alive(name):
            return
        p = self.procs.items.get(name, (None,))[0]
        code = p.returncode if p else "?"
        tail = self.procs.log_tail(name)
        self.crashes[name] = self.crashes.get(name, 0) + 1
        msg = f"{name} was found dead (exit status {code}); restarted. Last log lines:\n{tail}"
        log(msg)
        self.notes.append(msg)
        self.procs.items.pop(name, None)
        self.start_target(name)

    def proxy_pid(self, name):
        return None if self.targets[name]["kind"] == "direct" else self.procs.pid(name)

    # ----- workloads

    def run_sysbench(self, name, test, threads):
        t = self.targets[name]
        pid = self.proxy_pid(name)
        db_pid = self.procs.pid("mariadbd")
        argv = ["sysbench", test, *self.sysbench_common(t["port"]), f"--threads={threads}",
                f"--time={self.a.seconds}", "--events=0", "--percentile=95", "--report-interval=0",
                "--histogram=on", "run"]
        meter = CpuMeter(pid) if pid else None
        d0 = cpu_us(db_pid)
        w0 = time.monotonic()
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=self.a.seconds + 120,
                               preexec_fn=_child_setup)
        except subprocess.TimeoutExpired:
            return {"error": f"sysbench timed out after {self.a.seconds + 120}s"}
        wall = time.monotonic() - w0
        c1 = meter.stop() if pid and self.procs.alive(name) else None
        d1 = cpu_us(db_pid)
        out = r.stdout + r.stderr
        m_q = re.search(r"queries:\s+(\d+)\s+\(([\d.]+) per sec", out)
        m_p = re.search(r"95th percentile:\s+([\d.]+)", out)
        m_e = re.search(r"ignored errors:\s+(\d+)", out)
        m_r = re.search(r"reconnects:\s+(\d+)", out)
        if r.returncode != 0 or not m_q or not m_p:
            tail = "\n".join(out.strip().splitlines()[-15:])
            return {"error": f"sysbench exit {r.returncode}: {tail}"}
        queries = int(m_q.group(1))
        p95 = histogram_percentile(out, 0.95)
        res = {"qps": float(m_q.group(2)), "p95_ms": p95 if p95 is not None else float(m_p.group(1)),
               "p95_sysbench_ms": float(m_p.group(1)), "queries": queries,
               "ignored_errors": int(m_e.group(1)) if m_e else 0, "reconnects": int(m_r.group(1)) if m_r else 0,
               "wall_s": round(wall, 2), "db_cpu_us_per_q": (d1 - d0) / queries if queries else None}
        if pid:
            if c1 is None:
                res["error"] = f"{name} died during the run"
            else:
                res["cpu_us"] = round(c1)
                res["cpu_ticks_us"] = meter.ticks_us
                res["cpu_us_per_q"] = c1 / queries if queries else None
        if res["reconnects"]:
            res.setdefault("error", f"sysbench: {res['reconnects']} reconnects")
        if res["ignored_errors"]:
            # sysbench ignores deadlocks (1213) and lock wait timeouts by default: the server's
            # doing, not the proxy's, but worth a line in the report.
            res["note"] = f"sysbench ignored {res['ignored_errors']} error(s) (deadlocks, by default)"
        return res

    def run_blob(self, name):
        """BLOB_REPEAT times: INSERT a blob (one BLOB_MB MiB COM_STMT_EXECUTE packet), SELECT it back
        (one BLOB_MB MiB row), compare the bytes, DELETE it; the proxy's CPU is read around each
        step and its RSS sampled throughout."""
        t = self.targets[name]
        pid = self.proxy_pid(name)
        size_mb = self.a.blob_mb * MiB / 1e6
        res = {"insert_s": [], "select_s": [], "cpu_insert_us": 0, "cpu_select_us": 0}
        sampler = None
        client = None
        try:
            client = BlobClient(self.a.blob_client, t["port"], self.a.blob_mb,
                                os.path.join(self.workdir, "blob_client.log"))
            if pid:
                time.sleep(0.2)
                res["rss_base_kib"] = status_kib(pid, "VmRSS")
                hwm_ok = reset_hwm(pid)
                sampler = RssSampler(pid)
                sampler.start()
            for _ in range(self.a.blob_repeat):
                m = CpuMeter(pid) if pid else None
                secs, blob_id = client.cmd("insert")
                res["cpu_insert_us"] += m.stop() if pid else 0
                m = CpuMeter(pid) if pid else None
                sel_s, verdict = client.cmd(f"select {blob_id}")
                res["cpu_select_us"] += m.stop() if pid else 0
                if verdict != "match":
                    res["error"] = f"the blob selected back differs from the one inserted (id {blob_id})"
                client.cmd(f"delete {blob_id}")
                res["insert_s"].append(float(secs))
                res["select_s"].append(float(sel_s))
            if pid:
                sampler.stop()
                peak = sampler.peak
                if hwm_ok:
                    peak = max(peak, status_kib(pid, "VmHWM"))
                res["rss_peak_kib"] = peak
                # sluice keeps its last large buffer for up to 5 s for the next one.
                time.sleep(6.0)
                res["rss_after_kib"] = status_kib(pid, "VmRSS")
        except BenchError as e:
            res["error"] = str(e)
        finally:
            if sampler:
                sampler.stop()
            if client:
                client.close()
        if not res["insert_s"]:
            return res
        n = len(res["insert_s"])
        res["insert_mbps"] = size_mb / statistics.median(res["insert_s"])
        res["select_mbps"] = size_mb / statistics.median(res["select_s"])
        if pid:
            res["cpu_ms_insert"] = res["cpu_insert_us"] / n / 1000
            res["cpu_ms_select"] = res["cpu_select_us"] / n / 1000
            res["cpu_ms_blob"] = res["cpu_ms_insert"] + res["cpu_ms_select"]
        if pid and not self.procs.alive(name):
            res["error"] = f"{name} died during the blob test"
        return res

    def warm_up(self):
        """One untimed sysbench run straight to the server, so round 1 does not pay for cold caches."""
        secs = min(5, self.a.seconds)
        log(f"warm-up: oltp_read_write, 8 threads, {secs}s, direct")
        run_cmd(["sysbench", "oltp_read_write", *self.sysbench_common(self.db_port), "--threads=8",
                 f"--time={secs}", "--report-interval=0", "run"], secs + 120, "sysbench warm-up")

    def run_rounds(self):
        workloads = [w for w in self.a.workloads]
        if any(w in SYSBENCH_WORKLOADS for w in workloads):
            self.warm_up()
        names = list(self.targets)
        total = self.a.rounds * len(workloads) * len(names)
        k = 0
        for rnd in range(self.a.rounds):
            for wi, wl in enumerate(workloads):
                shift = (rnd + wi) % len(names)
                order = names[shift:] + names[:shift]
                for name in order:
                    k += 1
                    self.ensure_alive(name)
                    time.sleep(self.a.settle)
                    if wl == "blob":
                        res = self.run_blob(name)
                        summary = (f"insert {res.get('insert_mbps', 0):.0f} MB/s, select {res.get('select_mbps', 0):.0f} MB/s"
                                   + (f", cpu {res['cpu_ms_blob']:.1f} ms/blob, peak rss {res['rss_peak_kib'] / 1024:.1f} MiB"
                                      if "cpu_ms_blob" in res else ""))
                    else:
                        test, threads = SYSBENCH_WORKLOADS[wl]
                        res = self.run_sysbench(name, test, threads)
                        summary = (f"{res.get('qps', 0):.0f} qps, p95 {res.get('p95_ms', 0)} ms"
                                   + (f", {res['cpu_us_per_q']:.1f} cpu us/q" if res.get("cpu_us_per_q") else ""))
                    res.update({"round": rnd + 1, "workload": wl, "target": name})
                    if "error" in res:
                        log(f"[{k}/{total}] round {rnd + 1} {wl:<7} {name:<10} ERROR: {res['error']}")
                        self.notes.append(f"round {rnd + 1}, {wl}, {name}: {res['error']}")
                    else:
                        log(f"[{k}/{total}] round {rnd + 1} {wl:<7} {name:<10} {summary}"
                            + (f" ({res['note']})" if "note" in res else ""))
                        if "note" in res:
                            self.ignored_errors.append(f"round {rnd + 1} {wl} {name}")
                    self.results["blob" if wl == "blob" else "sysbench"].append(res)

    # ----- idle sessions

    def run_idle(self, name):
        t = self.targets[name]
        n = self.a.idle_n
        if self.a.idle_fresh:
            self.restart_target(name)
        else:
            self.ensure_alive(name)
        pid = self.proxy_pid(name)
        time.sleep(1)
        res = {"target": name, "sessions": n, "rss_before_kib": status_kib(pid, "VmRSS"), "fds_before": fd_count(pid)}
        conns, errors = [], []
        lock = threading.Lock()

        def one(_):
            try:
                c = connect(t["port"], timeout=60, autocommit=None)
                with lock:
                    conns.append(c)
            except Exception as e:
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")

        log(f"idle: opening {n} sessions through {name}")
        w0 = time.monotonic()
        try:
            with concurrent.futures.ThreadPoolExecutor(self.a.idle_threads) as ex:
                done = 0
                for _ in ex.map(one, range(n)):
                    done += 1
                    if done % 1000 == 0:
                        log(f"idle: {name}: {done}/{n} attempted, {len(errors)} errors")
                    if len(errors) > max(20, n // 100):
                        raise BenchError(f"idle: too many connect errors through {name}: {errors[:3]}")
            res["open_s"] = round(time.monotonic() - w0, 1)
            time.sleep(self.a.idle_settle)
            if not self.procs.alive(name):
                raise BenchError(f"idle: {name} died with {len(conns)} sessions open:\n{self.procs.log_tail(name)}")
            res.update({"opened": len(conns), "errors": len(errors), "rss_open_kib": status_kib(pid, "VmRSS"),
                        "fds_open": fd_count(pid)})
            # Every session still works (a sample): a round trip on each.
            bad = 0
            sample = conns[:: max(1, len(conns) // 100)]
            for c in sample:
                try:
                    c.ping(reconnect=False)
                except Exception:
                    bad += 1
            res["ping_failed"] = f"{bad}/{len(sample)}"
            res["rss_ping_kib"] = status_kib(pid, "VmRSS")
            if errors:
                self.notes.append(f"idle via {name}: {len(errors)} connect errors, first: {errors[0]}")
        finally:
            for c in conns:
                try:
                    c.close()
                except Exception:
                    pass
            conns.clear()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and fd_count(pid) > res["fds_before"] + 4:
            time.sleep(0.5)
        time.sleep(1)
        res["rss_closed_kib"] = status_kib(pid, "VmRSS")
        res["fds_closed"] = fd_count(pid)
        res["kib_per_session"] = (res["rss_open_kib"] - res["rss_before_kib"]) / max(1, res["opened"])
        log(f"idle: {name}: rss {res['rss_before_kib'] / 1024:.1f} -> {res['rss_open_kib'] / 1024:.1f} MiB with "
            f"{res['opened']} sessions ({res['kib_per_session']:.2f} KiB/session), "
            f"{res['rss_closed_kib'] / 1024:.1f} MiB after closing; fds {res['fds_before']} -> {res['fds_open']} "
            f"-> {res['fds_closed']}; opened in {res['open_s']}s")
        return res

    # ----- micro

    def run_micro(self):
        out = os.path.join(self.workdir, "framer_bench.json")
        log("framer micro-benchmark")
        run_cmd([self.a.framer_bench, f"--benchmark_out={out}", "--benchmark_out_format=json",
                 "--benchmark_repetitions=3", "--benchmark_report_aggregates_only=true",
                 f"--benchmark_min_time={self.a.micro_min_time}"], 900, "framer_bench")
        with open(out) as f:
            data = json.load(f)
        for b in data["benchmarks"]:
            if b.get("aggregate_name") != "median":
                continue
            self.results["micro"].append({"name": b["run_name"], "bytes_per_second": b.get("bytes_per_second"),
                                          "items_per_second": b.get("items_per_second"),
                                          "cpu_time_ns": b.get("cpu_time"), "error": b.get("error_message")})

    # ----- main

    def run(self):
        self.machine_info()
        if "micro" in self.a.parts:
            self.run_micro()  # before the database starts: the quietest moment
        needs_db = any(p in self.a.parts for p in ("sysbench", "blob", "idle"))
        if needs_db:
            self.start_mariadb()
            self.prepare_data()
            self.define_targets()
            for name in self.targets:
                self.start_target(name)
            log("targets up: " + ", ".join(f"{n} :{t['port']}" for n, t in self.targets.items()))
            if self.a.workloads:
                self.run_rounds()
            if "idle" in self.a.parts:
                for name in self.a.idle_targets:
                    if name not in self.targets or self.targets[name]["kind"] == "direct":
                        raise BenchError(f"idle target {name!r} is not a running proxy target")
                    self.results["idle"].append(self.run_idle(name))
            for name in self.targets:
                if self.targets[name]["kind"] != "direct" and not self.procs.alive(name):
                    self.ensure_alive(name)
                self.snapshot_health(name, "end of run")
                self.log_summary(name)
        self.info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]


def histogram_percentile(out, q):
    """The q-quantile from sysbench's latency histogram (--histogram=on): its buckets are ~1.8 %
    wide and printed to the microsecond, where the summary's percentile is rounded to 10 µs, too
    coarse for sub-0.1 ms point selects."""
    buckets = [(float(m.group(1)), int(m.group(2)))
               for m in re.finditer(r"^\s+([\d.]+) \|[* ]*?\s+(\d+)\s*$", out, re.M)]
    total = sum(c for _, c in buckets)
    if not total:
        return None
    seen = 0
    for value, count in buckets:
        seen += count
        if seen >= q * total:
            return value
    return buckets[-1][0]


SYSBENCH_WORKLOADS = {
    "ps1": ("oltp_point_select", 1),
    "ps16": ("oltp_point_select", 16),
    "rw8": ("oltp_read_write", 8),
}
WORKLOAD_TITLES = {"ps1": "oltp_point_select, 1 thread", "ps16": "oltp_point_select, 16 threads",
                   "rw8": "oltp_read_write, 8 threads"}


# --------------------------------------------------------------------------- report

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec=".1f", none="–"):
    return none if v is None else format(v, spec)


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def report(bench, args):
    a, info, R = args, bench.info, bench.results
    targets = list(bench.targets) or args.targets
    lines = []
    add = lines.append
    add(f"# sluice benchmark — {info['date']}")
    add("")
    add(f"- machine: `{info['host']}`, {info['nproc']} CPUs ({info['cpu']}), {info['mem_gib']} GiB, "
        f"Linux {info['kernel']}; load average {' '.join(info['loadavg_start'])} at start, "
        f"{' '.join(info.get('loadavg_end', ['?']))} at end")
    add(f"- {info['mariadb']}")
    add(f"- {info['haproxy']}; {info['sysbench']}; {info['sluice']} ({info['commit']})")
    add(f"- settings: {a.rounds} interleaved round(s), {a.seconds} s per sysbench run, "
        f"{a.tables}×{a.table_size} rows, blob {a.blob_mb} MiB × {a.blob_repeat} per run; "
        f"targets: {', '.join(targets)}; medians over rounds")
    add("- floor = `shared/bench/floorproxy.c` (bare epoll forwarder); floor-uring = the same on io_uring "
        "(`tests/bench/uring_floor.c`: reads and writes submitted in batches); HAProxy in TCP mode, nbthread 1; "
        "CPU = the proxy process's utime+stime over the run (/proc/PID/stat, read at ns resolution from "
        "/proc/PID/task/*/schedstat) ÷ queries")
    add("")

    sb = R["sysbench"]
    if sb:
        add("## sysbench")
        add("")
        add("| workload | target | QPS | QPS ÷ direct | p95 ms | CPU µs/query | CPU ÷ HAProxy | CPU ÷ floor | "
            "QPS spread | runs ok |")
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for wl in [w for w in a.workloads if w in SYSBENCH_WORKLOADS]:
            m = {}
            for t in targets:
                rs = [r for r in sb if r["workload"] == wl and r["target"] == t]
                ok = [r for r in rs if "error" not in r]
                qs = [r["qps"] for r in ok]
                m[t] = {"qps": med(qs), "p95": med(r["p95_ms"] for r in ok),
                        "cpu": med(r.get("cpu_us_per_q") for r in ok), "ok": f"{len(ok)}/{len(rs)}",
                        "spread": (max(qs) - min(qs)) / med(qs) * 100 if len(qs) > 1 else None}
            for t in targets:
                x = m[t]
                add(f"| {WORKLOAD_TITLES[wl]} | {t} | {fmt(x['qps'], '.0f')} | "
                    f"{fmt(ratio(x['qps'], m.get('direct', {}).get('qps')), '.2f')} | {fmt(x['p95'], '.3f')} | "
                    f"{fmt(x['cpu'], '.2f')} | {fmt(ratio(x['cpu'], m.get('haproxy', {}).get('cpu')), '.2f')} | "
                    f"{fmt(ratio(x['cpu'], m.get('floor', {}).get('cpu')), '.2f')} | "
                    f"{fmt(x['spread'], '.0f')}{'' if x['spread'] is None else ' %'} | {x['ok']} |")
        add("")
        add("p95 from sysbench's latency histogram (µs resolution). QPS spread = (max − min) ÷ median over the "
            "rounds: how much to trust a ratio. CPU ÷ floor near 1 means the proxy costs what the kernel's work "
            "for the two extra TCP hops costs.")
        add("")

    bl = R["blob"]
    if bl:
        add(f"## {a.blob_mb} MiB blob: INSERT then SELECT (Connector/C, bytes compared)")
        add("")
        add("| target | insert MB/s | ÷ direct | select MB/s | ÷ direct | CPU ms/blob insert | select | "
            "CPU ÷ HAProxy | RSS before MiB | peak MiB | growth MiB | after MiB | runs ok |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        m = {}
        for t in targets:
            rs = [r for r in bl if r["target"] == t]
            ok = [r for r in rs if "error" not in r]
            m[t] = {"ins": med(r.get("insert_mbps") for r in ok), "sel": med(r.get("select_mbps") for r in ok),
                    "ci": med(r.get("cpu_ms_insert") for r in ok), "cs": med(r.get("cpu_ms_select") for r in ok),
                    "cb": med(r.get("cpu_ms_blob") for r in ok),
                    "base": med(r.get("rss_base_kib") for r in ok), "peak": med(r.get("rss_peak_kib") for r in ok),
                    "grow": med((r["rss_peak_kib"] - r["rss_base_kib"]) if "rss_peak_kib" in r else None for r in ok),
                    "after": med(r.get("rss_after_kib") for r in ok), "ok": f"{len(ok)}/{len(rs)}"}
        d, h = m.get("direct", {}), m.get("haproxy", {})
        for t in targets:
            x = m[t]
            mib = lambda v: fmt(None if v is None else v / 1024, ".1f")
            add(f"| {t} | {fmt(x['ins'], '.0f')} | {fmt(ratio(x['ins'], d.get('ins')), '.2f')} | "
                f"{fmt(x['sel'], '.0f')} | {fmt(ratio(x['sel'], d.get('sel')), '.2f')} | {fmt(x['ci'])} | "
                f"{fmt(x['cs'])} | {fmt(ratio(x['cb'], h.get('cb')), '.2f')} | {mib(x['base'])} | {mib(x['peak'])} | "
                f"{mib(x['grow'])} | {mib(x['after'])} | {x['ok']} |")
        add("")
        add(f"INSERT = a prepared statement whose execute packet carries the blob (one {a.blob_mb} MiB logical "
            f"packet client → server); SELECT = one {a.blob_mb} MiB row server → client. MB/s = 10⁶ payload bytes "
            "per second of the client's wall time for that statement (median of the runs' medians). "
            "CPU per blob = the proxy's CPU for that statement. Peak RSS: VmHWM reset via "
            "/proc/PID/clear_refs before the test, and VmRSS sampled every 50 ms; after = VmRSS 6 s after "
            "the last statement (sluice keeps its last large buffer up to 5 s for the next large packet).")
        add("")

    idle = R["idle"]
    if idle:
        add(f"## Idle sessions ({a.idle_n} concurrent, each a client and an upstream connection)")
        add("")
        add("| target | opened | RSS before MiB | RSS with sessions MiB | KiB/session | RSS after close MiB | "
            "fds open | open time s | pings failed |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in idle:
            add(f"| {r['target']} | {r.get('opened', 0)} | {r['rss_before_kib'] / 1024:.1f} | "
                f"{r.get('rss_open_kib', 0) / 1024:.1f} | {r.get('kib_per_session', 0):.2f} | "
                f"{r.get('rss_closed_kib', 0) / 1024:.1f} | {r.get('fds_open', '?')} | {r.get('open_s', '?')} | "
                f"{r.get('ping_failed', '?')} |")
        add("")
        add("Each proxy was " + ("restarted just before its idle test. " if a.idle_fresh else "measured as it was. ")
            + "KiB/session = (RSS with sessions − RSS before) ÷ sessions.")
        add("")

    mic = R["micro"]
    if mic:
        add("## Framer micro-benchmark (Google Benchmark, median of 3)")
        add("")
        add("| benchmark (arg = bytes per read) | GB/s | M packets/s | target |")
        add("|---|---:|---:|---|")
        for r in mic:
            gbs = r["bytes_per_second"] / 1e9 if r["bytes_per_second"] else None
            mps = r["items_per_second"] / 1e6 if r["items_per_second"] else None
            tgt = "≥ 5 GB/s" if "Large" in r["name"] else "≥ 50 M packets/s"
            add(f"| {r['name']} | {fmt(gbs, ',.1f')} | {fmt(mps, ',.1f')} | {tgt} |")
        add("")
        add("The framer reads headers only, so on large packets its cost is per read call, not per byte: "
            "GB/s there is the bytes a read covers ÷ the time to walk it.")
        add("")

    checks = issue6_checks(bench, args)
    if checks:
        add("## Issue 6 targets")
        add("")
        add("| target | check | value | verdict |")
        add("|---|---|---:|---|")
        for t, what, val, ok in checks:
            verdict = {True: "met", False: "**missed**", None: "n/a", "noise": "within noise"}[ok]
            add(f"| {t} | {what} | {val} | {verdict} |")
        add("")
        add("sysbench and blob checks: the median of per-round ratios (sluice's run ÷ the reference's run in the same "
            "round), their range, and how many rounds met the target; \"within noise\" when some rounds met "
            "it and some did not.")
        add("")
        add("CPU/query above is utime+stime per query, which on a shared VM also moves with time spent "
            "waiting for the CPU; when perf is available, the CPU targets are judged again on cycles "
            "per query at the end (\"CPU targets on cycles per query\"), the steadier measure.")
        add("")

    best = best_workers(bench, args)
    if best:
        add(best)
        add("")
    noisy = [f"{r['workload']}/{r['target']}" for r in _spreads(bench) if r["spread"] > 20]
    if noisy:
        add(f"**Noise warning:** QPS varied by more than 20 % between rounds for {len(noisy)} workload/target "
            f"pair(s) ({', '.join(noisy[:6])}{', …' if len(noisy) > 6 else ''}); load average "
            f"{' '.join(info['loadavg_start'])} → {' '.join(info.get('loadavg_end', ['?']))}. Ratios from this run "
            "are rough; rerun on a quiet machine (or with more ROUNDS).")
        add("")
    if bench.notes or bench.crashes:
        add("## Problems seen during the run")
        add("")
        for n in bench.notes:
            add("- " + n.replace("\n", "\n  "))
        add("")
    if bench.ignored_errors:
        add(f"sysbench ignored deadlock errors (its default for oltp_read_write; the runs count) in "
            f"{len(bench.ignored_errors)} run(s): {', '.join(bench.ignored_errors)}.")
        add("")
    return "\n".join(lines)


def _spreads(bench):
    out = []
    groups = {}
    for r in bench.results["sysbench"]:
        if "error" not in r:
            groups.setdefault((r["workload"], r["target"]), []).append(r["qps"])
    for (wl, t), qs in groups.items():
        if len(qs) > 1:
            out.append({"workload": wl, "target": t, "spread": (max(qs) - min(qs)) / statistics.median(qs) * 100})
    return out


def _sb_median(bench, wl, t, key):
    return med(r.get(key) for r in bench.results["sysbench"] if r["workload"] == wl and r["target"] == t
               and "error" not in r)


def _round_ratios(results, wl, t, ref, key):
    """t's value ÷ ref's in each round where both ran."""
    by = {}
    for r in results:
        if r["workload"] == wl and r["target"] in (t, ref) and "error" not in r and r.get(key):
            by.setdefault(r["round"], {})[r["target"]] = r[key]
    return [v[t] / v[ref] for v in by.values() if t in v and ref in v]


def _paired_check(results, wl, t, ref, key, fac, le):
    """(value text, verdict) of t ÷ ref against fac, paired by round: the two
    runs of a round are minutes apart, so their ratio moves less with the
    machine's load than a ratio of medians; the rounds' spread says how far
    to trust it. Verdict: True, False, "noise" (some rounds met it, some did
    not) or None (nothing to compare)."""
    rs = _round_ratios(results, wl, t, ref, key)
    if not rs:
        return "–", None
    meets = sum(1 for x in rs if (x <= fac if le else x >= fac))
    ok = True if meets == len(rs) else (False if meets == 0 else "noise")
    return f"{statistics.median(rs):.2f}× ({min(rs):.2f}–{max(rs):.2f}; {meets}/{len(rs)} rounds)", ok


def issue6_checks(bench, args):
    out = []
    sluices = [t for t in (bench.targets or {}) if t.startswith("sluice")]
    for s in sluices:
        for wl in ("ps1", "ps16"):
            if not any(r["workload"] == wl for r in bench.results["sysbench"]):
                continue
            for label, key, ref, fac, le in (
                    ("CPU/query ≤ 1.05 × floor", "cpu_us_per_q", "floor", 1.05, True),
                    ("CPU/query ≤ 0.85 × HAProxy", "cpu_us_per_q", "haproxy", 0.85, True),
                    ("QPS ≥ floor", "qps", "floor", 1.0, False),
                    ("QPS ≥ 1.05 × HAProxy", "qps", "haproxy", 1.05, False),
                    ("p95 ≤ HAProxy", "p95_ms", "haproxy", 1.0, True)):
                val, ok = _paired_check(bench.results["sysbench"], wl, s, ref, key, fac, le)
                out.append((s, f"{wl}: {label}", val, ok))
        bl = [r for r in bench.results["blob"] if "error" not in r]
        if bl:
            for label, key, ref, fac, le in (
                    ("blob insert ≥ 0.95 × direct throughput", "insert_mbps", "direct", 0.95, False),
                    ("blob select ≥ 0.95 × direct throughput", "select_mbps", "direct", 0.95, False),
                    ("CPU per blob ≤ HAProxy's", "cpu_ms_blob", "haproxy", 1.0, True)):
                val, ok = _paired_check(bl, "blob", s, ref, key, fac, le)
                out.append((s, label, val, ok))
            grow = med((r["rss_peak_kib"] - r["rss_base_kib"]) for r in bl if r["target"] == s and "rss_peak_kib" in r)
            out.append((s, "RSS growth < 2 × blob", f"{fmt(None if grow is None else grow / 1024, '.1f')} MiB",
                        None if grow is None else grow < 2 * args.blob_mb * 1024))
    for r in bench.results["idle"]:
        if r["target"].startswith("sluice") and "rss_open_kib" in r:
            # The target is for 9,000 sessions; a smaller IDLE_N cannot meet or miss it.
            full = r["opened"] >= r["sessions"]
            out.append((r["target"], f"RSS with {r['opened']}/{r['sessions']} idle sessions ≤ 90 MiB",
                        f"{r['rss_open_kib'] / 1024:.1f} MiB",
                        (r["rss_open_kib"] <= 90 * 1024 and full) if r["sessions"] >= 9000 else None))
            out.append((r["target"], "≤ 10 KiB per idle session", f"{r['kib_per_session']:.2f} KiB",
                        r["kib_per_session"] <= 10))
    for r in bench.results["micro"]:
        if "Large" in r["name"] and r["bytes_per_second"]:
            out.append(("framer", f"{r['name']} ≥ 5 GB/s", f"{r['bytes_per_second'] / 1e9:,.1f} GB/s",
                        r["bytes_per_second"] >= 5e9))
        elif "Small" in r["name"] and r["items_per_second"]:
            out.append(("framer", f"{r['name']} ≥ 50 M packets/s", f"{r['items_per_second'] / 1e6:,.1f} M/s",
                        r["items_per_second"] >= 50e6))
    return out


def best_workers(bench, args):
    sluices = [t for t in bench.targets if t.startswith("sluice")]
    if len(sluices) < 2 or not bench.results["sysbench"]:
        return None
    parts, score = [], {s: 0 for s in sluices}
    for wl in [w for w in args.workloads if w in SYSBENCH_WORKLOADS]:
        q = {s: _sb_median(bench, wl, s, "qps") for s in sluices}
        if any(v is None for v in q.values()):
            continue
        win = max(q, key=q.get)
        score[win] += 1
        parts.append(f"{wl}: " + ", ".join(f"{s} {q[s]:.0f}" for s in sluices))
    if not parts:
        return None
    best = max(score, key=score.get)
    return (f"**sluice workers:** best QPS on {score[best]} of {len(parts)} workloads: `{best}` "
            f"(median QPS — {'; '.join(parts)}).")


# --------------------------------------------------------------------------- entry

def parse_args():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True, help="scratch dir (datadir, logs, configs); removed by the caller")
    p.add_argument("--repo", default=os.path.dirname(os.path.dirname(here)))
    p.add_argument("--sluice", required=False, default="")
    p.add_argument("--sluice-nometrics", required=False, default="")
    p.add_argument("--floor", default="")
    p.add_argument("--floor-uring", default="", help="tests/bench/uring_floor.c built; empty: no floor-uring")
    p.add_argument("--framer-bench", default="")
    p.add_argument("--blob-client", default="")
    p.add_argument("--results", default=os.path.join(here, "results", "latest.md"))
    a = p.parse_args()
    for k in ("workdir", "sluice", "sluice_nometrics", "floor", "floor_uring", "framer_bench", "blob_client",
              "results"):
        if getattr(a, k):
            setattr(a, k, os.path.abspath(getattr(a, k)))
    a.seconds = env_int("BENCH_SECONDS", 15)
    a.rounds = env_int("ROUNDS", 3)
    a.tables = env_int("TABLES", 4)
    a.table_size = env_int("TABLE_SIZE", 10000)
    a.blob_mb = env_int("BLOB_MB", 64)
    a.blob_repeat = env_int("BLOB_REPEAT", 3)
    a.settle = env_int("SETTLE_MS", 1000) / 1000
    workers = os.environ.get("SLUICE_WORKERS", "1 2").split()
    a.targets = os.environ.get("TARGETS", "direct haproxy floor " + ("floor-uring " if a.floor_uring else "")
                               + " ".join(f"sluice-w{w}" for w in workers)
                               + f" sluice-nometrics-w{workers[0]}").split()
    a.workloads = os.environ.get("WORKLOADS", "ps1 ps16 rw8 blob").split()
    a.parts = os.environ.get("PARTS", "micro sysbench blob idle").split()
    if "sysbench" not in a.parts:
        a.workloads = [w for w in a.workloads if w == "blob"]
    if "blob" not in a.parts:
        a.workloads = [w for w in a.workloads if w != "blob"]
    for w in a.workloads:
        if w not in SYSBENCH_WORKLOADS and w != "blob":
            raise SystemExit(f"bench: unknown workload {w!r} (ps1 ps16 rw8 blob)")
    a.idle_n = env_int("IDLE_N", 9000) if "idle" in a.parts else 0
    a.idle_targets = os.environ.get("IDLE_TARGETS", f"sluice-w{workers[0]} haproxy floor").split()
    a.idle_threads = env_int("IDLE_THREADS", 8)
    a.idle_settle = env_int("IDLE_SETTLE_S", 3)
    a.idle_fresh = env_int("IDLE_FRESH", 1) != 0
    a.micro_min_time = os.environ.get("MICRO_MIN_TIME", "0.5")
    if "idle" in a.parts:
        a.targets = list(dict.fromkeys(a.targets + [t for t in a.idle_targets if t not in a.targets]))
    return a


def main():
    a = parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    if pymysql is None:
        raise SystemExit("bench: PyMySQL is missing (apt-get install python3-pymysql)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.idle_n and a.idle_n * 2 + 200 > hard:
        log(f"warning: IDLE_N={a.idle_n} needs ~{a.idle_n * 2 + 200} fds in a proxy; the hard limit is {hard}")
    for flag, path in (("--sluice", a.sluice), ("--sluice-nometrics", a.sluice_nometrics),
                       ("--floor", a.floor), ("--floor-uring", a.floor_uring), ("--framer-bench", a.framer_bench),
                       ("--blob-client", a.blob_client)):
        needed = {"--sluice": any(t.startswith("sluice") for t in a.targets) and a.parts != ["micro"],
                  "--sluice-nometrics": any("nometrics" in t for t in a.targets) and a.parts != ["micro"],
                  "--floor": "floor" in a.targets and a.parts != ["micro"],
                  "--floor-uring": "floor-uring" in a.targets and a.parts != ["micro"],
                  "--framer-bench": "micro" in a.parts,
                  "--blob-client": "blob" in a.workloads}[flag]
        if needed and not (path and os.access(path, os.X_OK)):
            raise SystemExit(f"bench: {flag} {path!r} is not an executable")
    bench = Bench(a)
    rc = 0
    try:
        bench.run()
    except Interrupted as e:
        log(f"interrupted ({e}); cleaning up")
        rc = 130
    except BenchError as e:
        log(f"FAILED: {e}")
        bench.notes.append(f"run aborted: {e}")
        rc = 1
    finally:
        # A second Ctrl-C must not interrupt the clean-up itself.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        bench.procs.stop_all()
    if rc == 130:
        return rc
    try:
        text = report(bench, a)
    except Exception as e:  # a report bug must not hide the raw numbers
        log(f"report failed: {e!r}")
        text = "(report failed)"
    print("\n" + text + "\n")
    os.makedirs(os.path.dirname(a.results), exist_ok=True)
    with open(a.results, "w") as f:
        f.write(text + "\n")
    raw = os.path.splitext(a.results)[0] + ".json"
    with open(raw, "w") as f:
        json.dump({"info": bench.info, "settings": {k: v for k, v in vars(a).items()},
                   "results": bench.results, "notes": bench.notes}, f, indent=1, default=str)
    log(f"wrote {a.results} and {raw}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
