"""py_probe.py: what psycopg2 and SQLAlchemy see from conngov (test/clients).

    python3 py_probe.py refuse DSN      one psycopg2 login over the budget:
                                        prints the message (libpq gives no
                                        SQLSTATE for a refused login)
    python3 py_probe.py pool DSN N [noping]
                                        a SQLAlchemy engine (pool_size 2,
                                        max_overflow 0, pool_pre_ping unless
                                        "noping"): two connections checked
                                        out and returned, then, after a line
                                        on stdin (conngov has ended them), N
                                        queries; prints how many failed
    python3 py_probe.py ending DSN      two psycopg2 connections, one idle
                                        (autocommit) and one idle in a
                                        transaction; prints their pids, then,
                                        after a line on stdin (conngov has
                                        ended both), runs a query on each and
                                        prints what psycopg2 raised

Copyright (c) 2026, conngov developers
"""
import json
import sys

import psycopg2
import sqlalchemy


def say(**o):
    print(json.dumps(o), flush=True)


mode, dsn = sys.argv[1], sys.argv[2]
if mode == 'refuse':
    try:
        psycopg2.connect(dsn).close()
        say(step='refuse', admitted=True)
    except psycopg2.OperationalError as e:
        say(step='refuse', admitted=False, pgcode=e.pgcode, message=str(e))
    sys.exit(0)

if mode == 'ending':
    idle = psycopg2.connect(dsn)
    idle.autocommit = True
    idle.cursor().execute('SELECT 1')
    xact = psycopg2.connect(dsn)
    xact.cursor().execute('SELECT 1')   # psycopg2 opened a transaction
    say(step='open', idle=idle.get_backend_pid(), xact=xact.get_backend_pid())
    sys.stdin.readline()                # barrier: conngov has ended them
    seen = {}
    for name, conn in (('idle', idle), ('xact', xact)):
        try:
            conn.cursor().execute('SELECT 1')
            seen[name] = {'error': None}
        except psycopg2.Error as e:
            seen[name] = {'error': type(e).__name__, 'pgcode': e.pgcode,
                          'message': str(e)}
    say(step='ending', **seen)
    sys.exit(0)

n = int(sys.argv[3])
ping = len(sys.argv) < 5 or sys.argv[4] != 'noping'
engine = sqlalchemy.create_engine('postgresql+psycopg2://', pool_size=2,
                                  max_overflow=0, pool_pre_ping=ping,
                                  creator=lambda: psycopg2.connect(dsn))
conns = [engine.connect() for _ in range(2)]
for c in conns:
    c.execute(sqlalchemy.text('SELECT 1'))
for c in conns:
    c.close()                   # back to the pool, idle
say(step='pooled', checked_in=engine.pool.checkedin())

sys.stdin.readline()            # barrier: conngov has ended them

failed = 0
for _ in range(n):
    try:
        with engine.connect() as c:
            c.execute(sqlalchemy.text('SELECT 1')).scalar()
    except Exception as e:      # noqa: BLE001 - counted, shown
        failed += 1
        say(step='error', message=str(e))
say(step='queries', ran=n, failed=failed)
engine.dispose()
