/*-------------------------------------------------------------------------
 *
 * connlat.c
 *		Login latency: connect, run SELECT 1, disconnect, COUNT times;
 *		print each round trip in microseconds, one per line.
 *
 *	  connlat CONNINFO COUNT
 *
 * A client as small as libpq allows, so that what it measures is the
 * server's login (fork, authentication, conngov's check, backend start),
 * not a shell's or a driver's start-up.  Exits non-zero on the first
 * failed login.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  bench/connlat.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "libpq-fe.h"

int
main(int argc, char **argv)
{
	long		count;
	long		i;

	if (argc != 3 || (count = atol(argv[2])) <= 0)
	{
		fprintf(stderr, "usage: connlat CONNINFO COUNT\n");
		return 2;
	}
	for (i = 0; i < count; i++)
	{
		struct timespec t0,
					t1;
		PGconn	   *conn;
		PGresult   *res;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		conn = PQconnectdb(argv[1]);
		if (PQstatus(conn) != CONNECTION_OK)
		{
			fprintf(stderr, "connlat: %s", PQerrorMessage(conn));
			PQfinish(conn);
			return 1;
		}
		res = PQexec(conn, "SELECT 1");
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "connlat: %s", PQerrorMessage(conn));
			PQclear(res);
			PQfinish(conn);
			return 1;
		}
		PQclear(res);
		PQfinish(conn);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("%ld\n", (long) ((t1.tv_sec - t0.tv_sec) * 1000000L +
								(t1.tv_nsec - t0.tv_nsec) / 1000L));
	}
	return 0;
}
