/*-------------------------------------------------------------------------
 *
 * storm.c
 *		A reconnect storm: log in, run SELECT 1, log out, again and again,
 *		retrying at once when refused, until SECONDS have passed or
 *		STOPFILE exists; print what happened.
 *
 *	  storm CONNINFO SECONDS [STOPFILE]
 *
 * Prints one line: "admitted N refused_limit N refused_rate N other N"
 * (refused_limit: conngov's "exhausted"; refused_rate: "login rate
 * exceeded"; other: any other failure).  As small a client as libpq
 * allows, so that a few of them ask for more logins than a rate limit
 * admits: a pool that retries as fast as it can.  Used by bench/rate.sh
 * and by TAP 041.
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  bench/storm.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	double		seconds;
	double		end;
	const char *stop = argc > 3 ? argv[3] : NULL;
	long		admitted = 0,
				refused_limit = 0,
				refused_rate = 0,
				other = 0;

	if (argc < 3 || argc > 4 || (seconds = atof(argv[2])) <= 0)
	{
		fprintf(stderr, "usage: storm CONNINFO SECONDS [STOPFILE]\n");
		return 2;
	}
	end = now_s() + seconds;
	while (now_s() < end && (stop == NULL || access(stop, F_OK) != 0))
	{
		PGconn	   *conn = PQconnectdb(argv[1]);

		if (PQstatus(conn) == CONNECTION_OK)
		{
			PGresult   *res = PQexec(conn, "SELECT 1");

			if (PQresultStatus(res) == PGRES_TUPLES_OK)
				admitted++;
			else
				other++;
			PQclear(res);
		}
		else if (strstr(PQerrorMessage(conn), "login rate exceeded"))
			refused_rate++;
		else if (strstr(PQerrorMessage(conn), "exhausted"))
			refused_limit++;
		else
			other++;
		PQfinish(conn);
	}
	printf("admitted %ld refused_limit %ld refused_rate %ld other %ld\n",
		   admitted, refused_limit, refused_rate, other);
	return 0;
}
