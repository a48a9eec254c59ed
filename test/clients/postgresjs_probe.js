/*
 * postgresjs_probe.js: what postgres.js (the "postgres" npm package) sees
 * from conngov (test/clients).
 *
 *   node postgresjs_probe.js refuse HOST PORT USER APP
 *       one query on a new pool whose login conngov refuses; prints the
 *       error's code, message, detail and hint
 *   node postgresjs_probe.js pool HOST PORT USER APP
 *       one query, which leaves its connection idle in the pool; prints its
 *       pid, then, after a line on stdin (conngov has ended it), another
 *       query: prints its pid or its error
 *   node postgresjs_probe.js xact HOST PORT USER APP
 *       a transaction, idle after its first query; prints its pid, then,
 *       after a line on stdin (conngov has ended it), a second query:
 *       prints how the transaction ended
 *
 * Prints one JSON object per step.
 *
 * Copyright (c) 2026, conngov developers
 */
'use strict';

const postgres = require('postgres');
const readline = require('readline');

const [mode, host, port, user, app] = process.argv.slice(2);
const sql = postgres({
	host, port: Number(port), user, database: 'postgres', max: 2,
	idle_timeout: 0,			/* let conngov end idle connections */
	connection: { application_name: app }, onnotice: () => {}
});
const rl = readline.createInterface({ input: process.stdin });

function say(o) { process.stdout.write(JSON.stringify(o) + '\n'); }
/* the test writes one line in 'pool' and 'xact' mode; one promise for it */
let barrier = null;
function line() { return barrier || (barrier = new Promise((resolve) => rl.once('line', resolve))); }
function failure(e) { return { code: e.code, message: e.message, detail: e.detail, hint: e.hint }; }

async function main()
{
	if (mode === 'refuse')
	{
		await sql`SELECT 1`.then(() => say({ step: 'refuse', admitted: true }),
			(e) => say({ step: 'refuse', admitted: false, ...failure(e) }));
	}
	else if (mode === 'pool')
	{
		const [{ pid }] = await sql`SELECT pg_backend_pid() AS pid`;
		say({ step: 'open', pid });
		await line();
		await sql`SELECT pg_backend_pid() AS pid`.then(
			(r) => say({ step: 'ending', error: null, pid: r[0].pid }),
			(e) => say({ step: 'ending', error: failure(e) }));
	}
	else
	{
		await sql.begin(async (tx) => {
			const [{ pid }] = await tx`SELECT pg_backend_pid() AS pid`;
			say({ step: 'open', pid });
			await line();
			await tx`SELECT 1`;
		}).then(() => say({ step: 'ending', error: null }),
			(e) => say({ step: 'ending', error: failure(e) }));
	}
	/*
	 * sql.begin() rejects as soon as the connection closes, even while its
	 * callback still waits for the barrier: read the line before exiting,
	 * or the test would write into a closed pipe.
	 */
	if (mode !== 'refuse')
		await line();
	rl.close();
	await sql.end({ timeout: 1 });
}

main().catch((e) => { say({ step: 'failed', ...failure(e) }); process.exit(2); });
