#!/usr/bin/env python3
# bench/storm_wait.py: one refusal storm, measured.  Called by
# bench/storm_wait.sh; talks to the server with libpq through ctypes (no
# driver to install).
#
#   storm_wait.py HOST PORT SECONDS POOLS PER_POOL REFILL_MS LIFETIME_MS POSTMASTER_PID
#
# POOLS processes each play a misconfigured connection pool: it wants
# PER_POOL connections (application_name storm-N), keeps each for
# LIFETIME_MS (a pool's max lifetime, so that places free now and then),
# and every REFILL_MS tries to open the ones it misses, one after the
# other, as HikariCP does.  Meanwhile one more process, another
# application (application_name other), connects and disconnects 10 times
# a second and records each connect's latency.  Prints one line of
# key=value: the server's CPU seconds (the postmaster's children, from
# /proc: cutime+cstime of those that exited plus utime+stime of the live
# ones, before and after), the logins tried, admitted and refused, and
# the other application's connect latency (p50, p99, max, ms).
import ctypes
import multiprocessing as mp
import os
import random
import sys
import time

pq = ctypes.CDLL("libpq.so.5")
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQconnectdb.argtypes = [ctypes.c_char_p]
pq.PQstatus.argtypes = [ctypes.c_void_p]
pq.PQfinish.argtypes = [ctypes.c_void_p]
CONNECTION_OK = 0
TICK = os.sysconf("SC_CLK_TCK")


def connect(host, port, app, user="regress_app"):
    conn = pq.PQconnectdb(
        f"host={host} port={port} dbname=postgres user={user} "
        f"application_name={app} connect_timeout=10".encode())
    if pq.PQstatus(conn) == CONNECTION_OK:
        return conn
    pq.PQfinish(conn)
    return None


def pool(host, port, n, per_pool, refill, lifetime, end, q):
    random.seed(n)
    held = []  # (conn, close_at)
    tried = ok = 0
    while time.time() < end:
        now = time.time()
        for c, t in [h for h in held if h[1] <= now]:
            pq.PQfinish(c)
        held = [h for h in held if h[1] > now]
        while len(held) < per_pool and time.time() < end:
            tried += 1
            c = connect(host, port, f"storm-{n}")
            if c is None:
                break
            ok += 1
            held.append((c, time.time() + lifetime * random.uniform(0.5, 1.5)))
        time.sleep(refill)
    for c, _ in held:
        pq.PQfinish(c)
    q.put(("pool", tried, ok))


def other(host, port, end, q):
    lat = []
    while time.time() < end:
        t0 = time.time()
        c = connect(host, port, "other", user="regress_other")
        lat.append((time.time() - t0) * 1000.0)
        if c is not None:
            pq.PQfinish(c)
        time.sleep(0.1)
    q.put(("other", lat))


def server_cpu(pm):
    """CPU seconds of the postmaster's children, dead and alive."""
    with open(f"/proc/{pm}/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    total = int(st[13]) + int(st[14])  # cutime, cstime
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(s[1]) == pm:
            total += int(s[11]) + int(s[12])  # utime, stime
    return total / TICK


def main():
    host, port, secs, pools, per_pool, refill_ms, life_ms, pm = sys.argv[1:9]
    secs, pools, per_pool = float(secs), int(pools), int(per_pool)
    refill, lifetime, pm = int(refill_ms) / 1000.0, int(life_ms) / 1000.0, int(pm)
    q = mp.Queue()
    cpu0 = server_cpu(pm)
    end = time.time() + secs
    procs = [mp.Process(target=pool, args=(host, port, i, per_pool, refill,
                                           lifetime, end, q))
             for i in range(pools)]
    procs.append(mp.Process(target=other, args=(host, port, end, q)))
    for p in procs:
        p.start()
    tried = ok = 0
    lat = []
    for _ in procs:
        r = q.get()
        if r[0] == "pool":
            tried += r[1]
            ok += r[2]
        else:
            lat = r[1]
    for p in procs:
        p.join()
    time.sleep(0.5)  # let the last backends exit and be reaped
    cpu = server_cpu(pm) - cpu0
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0.0
    print(f"cpu={cpu:.2f} tried={tried} admitted={ok} refused={tried - ok} "
          f"other_n={len(lat)} p50={pct(0.50):.2f} p99={pct(0.99):.2f} "
          f"max={lat[-1] if lat else 0:.2f}")


if __name__ == "__main__":
    main()
