/*
 * node_probe.js: what node-postgres (pg) sees from conngov (test/clients).
 *
 *   node node_probe.js HOST PORT USER APP
 *
 * A pool of 3 against a budget of 2 with idle_timeout: three concurrent
 * checkouts (two admitted, one refused), then, after a line on stdin, the
 * two are returned to the pool, where conngov ends them for idleness: the
 * pool's 'error' handler gets each ending, and the pool recovers with a new
 * connection.  Prints one JSON object per step; exits 0 (an application
 * without pool.on('error') would crash here).
 *
 * Copyright (c) 2026, conngov developers
 */
'use strict';

const { Pool } = require('pg');
const readline = require('readline');

const [host, port, user, app] = process.argv.slice(2);
const pool = new Pool({
	host, port: Number(port), user, database: 'postgres',
	application_name: app, max: 3,
	idleTimeoutMillis: 0		/* let conngov end idle connections */
});
const errors = [];
pool.on('error', (err) => errors.push({ code: err.code, message: err.message }));

function say(o) { process.stdout.write(JSON.stringify(o) + '\n'); }

async function main()
{
	const r = await Promise.allSettled([1, 2, 3].map(() => pool.connect()));
	const ok = r.filter((x) => x.status === 'fulfilled').map((x) => x.value);
	const bad = r.filter((x) => x.status === 'rejected').map((x) => x.reason);
	say({ step: 'connect', admitted: ok.length,
		  refused: bad.map((e) => ({ code: e.code, message: e.message, detail: e.detail, hint: e.hint })) });

	/* barrier: the test has counted the sessions */
	const rl = readline.createInterface({ input: process.stdin });
	await new Promise((resolve) => rl.once('line', resolve));
	rl.close();

	ok.forEach((c) => c.release());
	say({ step: 'released', idle: pool.idleCount });

	const end = Date.now() + Number(process.env.CG_WAIT_MS || 180000);
	while (errors.length < ok.length && Date.now() < end)
		await new Promise((resolve) => setTimeout(resolve, 20));
	say({ step: 'ended', errors });

	const res = await pool.query('SELECT 1 AS one');
	say({ step: 'recovered', one: res.rows[0].one });
	await pool.end();
}

main().catch((e) => { say({ step: 'failed', code: e.code, message: e.message }); process.exit(2); });
