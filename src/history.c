/*-------------------------------------------------------------------------
 *
 * history.c
 *		Usage history: per budget and minute, the exact peak of its total
 *		and what happened to its logins; per minute, the server's peak.
 *
 * The minute being recorded is a number, the epoch (minutes since 1970,
 * wall-clock aligned).  Every counter slot has two minute words, one per
 * parity of the epoch: the minute's tag in the high 32 bits and the
 * highest total seen in it in the low 32.  A charge, a release and a
 * refusal call cg_history_note() under the shared budgets lock: it reads
 * the epoch and raises the word of that parity to the total (a release
 * notes the total before it), with at most one compare-and-swap; the
 * first note of a slot in a minute (the one that changes the tag) also
 * appends the slot to that minute's list of active slots (a fetch-and-add
 * on its length, no compare-and-swap).  So a 50 ms spike is in its
 * minute's peak, and the login path gains one read and at most one
 * compare-and-swap.
 *
 * Closing a minute (the worker, cg_history_close): the epoch moves on by
 * one under the budgets lock held exclusively, for that write only; every
 * charge, release and refusal noted before it has completed (they hold the
 * lock shared), and every later one notes the new minute.  The worker then
 * walks the closed minute's list only (work in the number of active
 * slots, never of budgets): the peak is the word of the old parity, and
 * the counts are the differences of the slot's cumulative counters
 * (admitted, refused, ...) from the worker's own snapshot of them, so a
 * login that races the close is counted in one minute or the next, never
 * in none and never in both.  The snapshots live in shared memory, so
 * that a restarted worker goes on from them.  A slot that still has sessions is carried
 * into the new minute with its total (sessions held through a minute are
 * part of its peak even when nothing happens); a release between the flip
 * and the carry noted the total before it already.  A record is written
 * only for a slot with a peak or a count above zero.
 *
 * The server's row per minute uses two global words the same way: the
 * peak of the sessions conngov counts (admitted and not yet gone, plus
 * logins waiting for a place: each holds a process slot) and the peak of
 * the waiting logins.  normal_in_use_peak is that peak capped at the
 * normal slots, normal_free_min the normal slots left at it.  Sessions
 * still authenticating, which conngov does not see yet, are not in it.
 *
 * conngov.history_size = 0 turns it all off (nothing is noted or closed).
 * Memory: conngov.history_size records (a ring, oldest overwritten first;
 * the overwrites of records younger than a day are counted, for health())
 * and a ring of CG_SERVER_MINUTES server rows.
 *
 * A worker that was away closes the minutes it missed in a row, one at a
 * time (sessions held through them are in each), up to
 * CG_HISTORY_MAX_CATCHUP of them.  A longer gap is the clock set forward
 * (or a machine resumed): the open minute is closed with what happened in
 * it, the minutes in between are skipped (no record, no server row; one
 * LOG line, and health() counts them), and recording goes on at the
 * clock's minute.  So a clock that jumps a year costs one close, not half
 * a million, and cannot flood the ring with minutes that did not happen.
 *
 * The records and the server rows survive a clean restart: the postmaster
 * writes them at shutdown to pg_stat/conngov_history.stat (with a header
 * naming the format and the system identifier) and reads and removes the
 * file at start, as pg_stat_statements does; a crash or an immediate stop
 * loses them.
 *
 * Lock rules: the epoch changes only under cg_shared->lock EXCLUSIVE; the
 * minute words and the lists' lengths are atomics written under it
 * SHARED; history_lock (LWLock, tranche "conngov") guards the rings:
 * EXCLUSIVE to append a batch (the worker), SHARED to copy a batch
 * (history(), server_history(), health()).
 *
 * Copyright (c) 2026, conngov developers
 *
 * IDENTIFICATION
 *	  src/history.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xlog.h"
#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "conngov.h"

PG_FUNCTION_INFO_V1(conngov_history);
PG_FUNCTION_INFO_V1(conngov_server_history);

/* Server rows kept: a week of minutes. */
#define CG_SERVER_MINUTES	(7 * 24 * 60)
/* Records copied (or written) per hold of history_lock. */
#define CG_HISTORY_BATCH	256
/* Minutes closed one by one after a gap; a longer gap is skipped. */
#define CG_HISTORY_MAX_CATCHUP	60
/* A record overwritten younger than this was overwritten early. */
#define CG_HISTORY_DAY_US	(INT64CONST(86400) * USECS_PER_SEC)

#define CG_HISTORY_FILE		"pg_stat/conngov_history.stat"
#define CG_HISTORY_MAGIC	0x43474831	/* "CGH1" */
#define CG_HISTORY_FORMAT	1

/* Seconds from the Unix epoch to PostgreSQL's (2000-01-01). */
#define CG_UNIX_TO_PG_SECS	\
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

/* One budget's minute. */
typedef struct CgHistRecord
{
	TimestampTz minute;			/* the minute's start */
	char		budget[NAMEDATALEN];
	uint32		peak;
	uint32		admitted;
	uint32		refused_limit;
	uint32		refused_floors;
	uint32		refused_rate;
	uint32		would_refuse;
	uint32		waited;
	uint32		wait_timeouts;
	uint32		ended_idle;
} CgHistRecord;

/* The server's minute. */
typedef struct CgServerMinute
{
	TimestampTz minute;
	int32		normal_in_use_peak;
	int32		normal_free_min;
	int32		waiting_peak;
} CgServerMinute;

/* The shared part; the lists and the rings follow it. */
typedef struct CgHistShared
{
	LWLock	   *lock;			/* history_lock */
	pg_atomic_uint32 epoch;		/* the minute being recorded */
	pg_atomic_uint32 nactive[2];	/* length of each parity's list */
	pg_atomic_uint32 sessions;	/* sessions charged now */
	pg_atomic_uint32 waiting;	/* logins waiting now */
	pg_atomic_uint64 server_word[2];	/* tag | peak of sessions + waiting */
	pg_atomic_uint64 waiting_word[2];	/* tag | peak of waiting */
	/* under lock */
	uint64		next;			/* records ever written */
	uint64		overwritten_early;
	uint64		server_next;	/* server rows ever written */
	uint64		skipped;		/* minutes skipped since start (worker) */
} CgHistShared;

/* The cumulative counters of a slot, as the worker last saw them. */
typedef struct CgHistSnap
{
	char		name[NAMEDATALEN];
	uint64		admitted;
	uint64		refused;
	uint64		refused_floors;
	uint64		refused_rate;
	uint64		would_refuse;
	uint64		waited;
	uint64		wait_timeouts;
	uint64		ended_idle;
} CgHistSnap;

/* On disk: this header, the records oldest first, the server rows. */
typedef struct CgHistFileHeader
{
	uint32		magic;
	uint32		format;
	uint64		system_identifier;
	uint32		record_size;
	uint32		server_size;
	uint64		nrecords;
	uint64		nserver;
	uint64		overwritten_early;
} CgHistFileHeader;

int			cg_history_size = 144000;

static CgHistShared *cg_hist = NULL;
static int32 *cg_hist_active[2];	/* slot numbers; cg_nslots = unbudgeted */
static CgHistRecord *cg_hist_records;
static CgServerMinute *cg_hist_server;
/* the worker's snapshots, one per slot (and the unbudgeted one) */
static CgHistSnap *cg_hist_snap;

/*---- shared memory ----*/

Size
cg_history_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(CgHistShared));

	size = add_size(size, mul_size(2, MAXALIGN(mul_size(2 * cg_max_budgets + 1,
														  sizeof(int32)))));
	size = add_size(size, MAXALIGN(mul_size(2 * cg_max_budgets + 1,
											sizeof(CgHistSnap))));
	size = add_size(size, MAXALIGN(mul_size(cg_history_size,
											sizeof(CgHistRecord))));
	size = add_size(size, mul_size(CG_SERVER_MINUTES, sizeof(CgServerMinute)));
	return size;
}

/* Minutes since the Unix epoch of a timestamp (the epoch's unit). */
static uint32
cg_minute_of(TimestampTz t)
{
	int64		secs = t / USECS_PER_SEC + CG_UNIX_TO_PG_SECS;

	return (uint32) (secs / SECS_PER_MINUTE);
}

/* The start of a minute number, as a timestamp. */
static TimestampTz
cg_minute_start(uint32 minute)
{
	return ((int64) minute * SECS_PER_MINUTE - CG_UNIX_TO_PG_SECS) *
		USECS_PER_SEC;
}

static void cg_history_restore(void);
static void cg_history_dump(int code, Datum arg);

/*
 * cg_history_shmem_init: attach (or create) the history's shared memory.
 * Called by shmem.c's startup hook under AddinShmemInitLock, with the
 * LWLock it hands over.  The postmaster, creating it, reads the file a
 * clean shutdown left and arranges for the next one.
 */
void
cg_history_shmem_init(LWLock *lock)
{
	bool		found;
	char	   *base;
	int			nlist = cg_nslots + 1;

	base = ShmemInitStruct("conngov history", cg_history_shmem_size(), &found);
	cg_hist = (CgHistShared *) base;
	base += MAXALIGN(sizeof(CgHistShared));
	cg_hist_active[0] = (int32 *) base;
	base += MAXALIGN(mul_size(nlist, sizeof(int32)));
	cg_hist_active[1] = (int32 *) base;
	base += MAXALIGN(mul_size(nlist, sizeof(int32)));
	cg_hist_snap = (CgHistSnap *) base;
	base += MAXALIGN(mul_size(nlist, sizeof(CgHistSnap)));
	cg_hist_records = (CgHistRecord *) base;
	base += MAXALIGN(mul_size(cg_history_size, sizeof(CgHistRecord)));
	cg_hist_server = (CgServerMinute *) base;

	if (found)
		return;

	memset(cg_hist, 0, sizeof(CgHistShared));
	/* the counters start at 0 with the segment: so do the snapshots */
	memset(cg_hist_snap, 0, mul_size(nlist, sizeof(CgHistSnap)));
	cg_hist->lock = lock;
	pg_atomic_init_u32(&cg_hist->epoch, cg_minute_of(GetCurrentTimestamp()));
	pg_atomic_init_u32(&cg_hist->nactive[0], 0);
	pg_atomic_init_u32(&cg_hist->nactive[1], 0);
	pg_atomic_init_u32(&cg_hist->sessions, 0);
	pg_atomic_init_u32(&cg_hist->waiting, 0);
	pg_atomic_init_u64(&cg_hist->server_word[0], 0);
	pg_atomic_init_u64(&cg_hist->server_word[1], 0);
	pg_atomic_init_u64(&cg_hist->waiting_word[0], 0);
	pg_atomic_init_u64(&cg_hist->waiting_word[1], 0);

	if (!IsUnderPostmaster)
	{
		cg_history_restore();
		on_shmem_exit(cg_history_dump, (Datum) 0);
	}
}

/*---- noting (login path, exits, refusals) ----*/

/*
 * cg_raise_word: raise a minute word of minute e to value; true when this
 * call gave the word its tag (the first note of the minute).
 */
static inline bool
cg_raise_word(pg_atomic_uint64 *w, uint32 e, uint32 value)
{
	uint64		cur = pg_atomic_read_u64(w);
	uint64		want = ((uint64) e << 32) | value;

	for (;;)
	{
		bool		tagged = (uint32) (cur >> 32) == e;

		if (tagged && (uint32) cur >= value)
			return false;
		if (pg_atomic_compare_exchange_u64(w, &cur, want))
			return !tagged;
	}
}

/* Slot number of a counters struct (cg_nslots: the unbudgeted one). */
static inline int
cg_counters_slot(const CgCounters *c)
{
	if (c == &cg_shared->unbudgeted)
		return cg_nslots;
	return (int) (((const char *) c - (const char *) cg_slots) / sizeof(CgSlot));
}

/* Mark c active in minute e at value; list it on the first mark. */
static inline void
cg_history_mark(CgCounters *c, uint32 e, uint32 value)
{
	if (cg_raise_word(&c->minute[e & 1], e, value))
	{
		uint32		i = pg_atomic_fetch_add_u32(&cg_hist->nactive[e & 1], 1);

		cg_hist_active[e & 1][i] = cg_counters_slot(c);
	}
}

/*
 * cg_history_note: a budget's total was (or, for a release, had been)
 * "total": raise its minute's peak.  Caller holds cg_shared->lock.
 */
void
cg_history_note(CgCounters *c, uint32 total)
{
	if (cg_hist == NULL || cg_history_size == 0)
		return;
	cg_history_mark(c, pg_atomic_read_u32(&cg_hist->epoch), total);
}

/*
 * cg_history_sessions: the server's sessions (delta +1/-1) or waiting
 * logins (waiting true) changed.  Caller holds cg_shared->lock.
 */
void
cg_history_sessions(int delta, bool waiting)
{
	uint32		e;
	uint32		s;
	uint32		w;

	if (cg_hist == NULL || cg_history_size == 0)
		return;
	e = pg_atomic_read_u32(&cg_hist->epoch);
	if (waiting)
	{
		w = pg_atomic_add_fetch_u32(&cg_hist->waiting, delta);
		s = pg_atomic_read_u32(&cg_hist->sessions);
		if (delta > 0)
			(void) cg_raise_word(&cg_hist->waiting_word[e & 1], e, w);
	}
	else
	{
		s = pg_atomic_add_fetch_u32(&cg_hist->sessions, delta);
		w = pg_atomic_read_u32(&cg_hist->waiting);
	}
	/* a decrease still tags the minute with what was there before it */
	(void) cg_raise_word(&cg_hist->server_word[e & 1], e,
						 s + w + (delta < 0 ? 1 : 0));
}

/*---- closing a minute (worker) ----*/

static inline uint32
cg_delta(uint64 now, uint64 before)
{
	/* a counter reset (reset_stats(), a reused slot) starts again at 0 */
	return (uint32) (now >= before ? now - before : now);
}

/*
 * cg_history_append: write records to the ring under history_lock.
 */
static void
cg_history_append(const CgHistRecord *recs, int n)
{
	int			i;

	if (n == 0 || cg_history_size == 0)
		return;
	LWLockAcquire(cg_hist->lock, LW_EXCLUSIVE);
	for (i = 0; i < n; i++)
	{
		CgHistRecord *r = &cg_hist_records[cg_hist->next % cg_history_size];

		if (cg_hist->next >= (uint64) cg_history_size &&
			recs[i].minute - r->minute < CG_HISTORY_DAY_US)
			cg_hist->overwritten_early++;
		*r = recs[i];
		cg_hist->next++;
	}
	LWLockRelease(cg_hist->lock);
}

/*
 * cg_history_close_one: close minute "old"; the epoch moves to "e", the
 * next minute (old + 1, or a later minute of the other parity after a
 * skip: the carry must go to the other parity's list).  Work in the
 * number of slots active in it.
 */
static void
cg_history_close_one(uint32 old, uint32 e)
{
	int			p = old & 1;
	uint32		n;
	uint32		i;
	CgHistRecord batch[CG_HISTORY_BATCH];
	int			nb = 0;
	CgServerMinute sm;
	uint64		w;
	int			slots = cg_normal_slots();

	LWLockAcquire(cg_shared->lock, LW_EXCLUSIVE);
	pg_atomic_write_u32(&cg_hist->epoch, e);
	LWLockRelease(cg_shared->lock);

	n = pg_atomic_read_u32(&cg_hist->nactive[p]);
	for (i = 0; i < n; i += CG_HISTORY_BATCH)
	{
		uint32		j;

		LWLockAcquire(cg_shared->lock, LW_SHARED);
		for (j = i; j < Min(n, i + CG_HISTORY_BATCH); j++)
		{
			int			slot = cg_hist_active[p][j];
			CgCounters *c = slot == cg_nslots ? &cg_shared->unbudgeted :
				&cg_slots[slot].c;
			const char *name = slot == cg_nslots ? CG_UNBUDGETED_NAME :
				cg_slots[slot].name;
			CgHistSnap *snap = &cg_hist_snap[slot];
			CgHistSnap now;
			CgHistRecord *r = &batch[nb];
			uint32		total;

			w = pg_atomic_read_u64(&c->minute[p]);
			strlcpy(now.name, name, NAMEDATALEN);
			now.admitted = pg_atomic_read_u64(&c->admitted);
			now.refused = pg_atomic_read_u64(&c->refused);
			now.refused_floors = pg_atomic_read_u64(&c->refused_for_floors);
			now.refused_rate = pg_atomic_read_u64(&c->refused_rate);
			now.would_refuse = pg_atomic_read_u64(&c->would_refuse);
			now.waited = pg_atomic_read_u64(&c->waited);
			now.wait_timeouts = pg_atomic_read_u64(&c->wait_timeouts);
			now.ended_idle = pg_atomic_read_u64(&c->ended_idle);
			if (strcmp(snap->name, now.name) != 0)
				memset(snap, 0, sizeof(CgHistSnap));

			r->minute = cg_minute_start(old);
			strlcpy(r->budget, now.name, NAMEDATALEN);
			r->peak = (uint32) (w >> 32) == old ? (uint32) w : 0;
			r->admitted = cg_delta(now.admitted, snap->admitted);
			r->refused_limit = cg_delta(now.refused, snap->refused);
			r->refused_floors = cg_delta(now.refused_floors, snap->refused_floors);
			r->refused_rate = cg_delta(now.refused_rate, snap->refused_rate);
			r->would_refuse = cg_delta(now.would_refuse, snap->would_refuse);
			r->waited = cg_delta(now.waited, snap->waited);
			r->wait_timeouts = cg_delta(now.wait_timeouts, snap->wait_timeouts);
			r->ended_idle = cg_delta(now.ended_idle, snap->ended_idle);
			*snap = now;
			if (r->peak > 0 || r->admitted > 0 || r->refused_limit > 0 ||
				r->refused_floors > 0 || r->refused_rate > 0 ||
				r->would_refuse > 0 || r->waited > 0 ||
				r->wait_timeouts > 0 || r->ended_idle > 0)
				nb++;

			/* sessions held on are part of the next minute */
			total = pg_atomic_read_u32(&c->total);
			if (total > 0)
				cg_history_mark(c, e, total);
		}
		LWLockRelease(cg_shared->lock);
		cg_history_append(batch, nb);
		nb = 0;
	}
	pg_atomic_write_u32(&cg_hist->nactive[p], 0);

	/* the server's row, and its carry into the next minute */
	w = pg_atomic_read_u64(&cg_hist->server_word[p]);
	sm.minute = cg_minute_start(old);
	sm.normal_in_use_peak = Min((int32) ((uint32) (w >> 32) == old ? (uint32) w : 0),
								slots);
	sm.normal_free_min = slots - sm.normal_in_use_peak;
	w = pg_atomic_read_u64(&cg_hist->waiting_word[p]);
	sm.waiting_peak = (int32) ((uint32) (w >> 32) == old ? (uint32) w : 0);
	LWLockAcquire(cg_shared->lock, LW_SHARED);
	(void) cg_raise_word(&cg_hist->server_word[e & 1], e,
						 pg_atomic_read_u32(&cg_hist->sessions) +
						 pg_atomic_read_u32(&cg_hist->waiting));
	(void) cg_raise_word(&cg_hist->waiting_word[e & 1], e,
						 pg_atomic_read_u32(&cg_hist->waiting));
	LWLockRelease(cg_shared->lock);

	LWLockAcquire(cg_hist->lock, LW_EXCLUSIVE);
	cg_hist_server[cg_hist->server_next % CG_SERVER_MINUTES] = sm;
	cg_hist->server_next++;
	LWLockRelease(cg_hist->lock);
}

/*
 * cg_history_close: the worker closes every minute that has ended, one
 * at a time, or skips a gap longer than CG_HISTORY_MAX_CATCHUP (see the
 * header).  Returns when the next minute ends.
 */
TimestampTz
cg_history_close(TimestampTz now)
{
	uint32		current = cg_minute_of(now);
	uint32		e;

	if (cg_hist == NULL || cg_history_size == 0)
		return 0;
	e = pg_atomic_read_u32(&cg_hist->epoch);
	/* a clock set back: the open minute stays open until it is reached */
	while ((int32) (current - e) > 0)
	{
		uint32		next = e + 1;

		CHECK_FOR_INTERRUPTS();
		if (current - e > CG_HISTORY_MAX_CATCHUP)
		{
			char	   *from;

			/* the clock's minute, or the one before it: the other parity */
			next = ((current - e) & 1) ? current : current - 1;
			/* timestamptz_to_str() returns a static buffer */
			from = pstrdup(timestamptz_to_str(cg_minute_start(e + 1)));
			LWLockAcquire(cg_hist->lock, LW_EXCLUSIVE);
			cg_hist->skipped += next - e - 1;
			LWLockRelease(cg_hist->lock);
			ereport(LOG,
					(errmsg("conngov history skips %u minutes, from %s to %s: the clock moved forward by more than %d minutes",
							next - e - 1, from,
							timestamptz_to_str(cg_minute_start(next - 1)),
							CG_HISTORY_MAX_CATCHUP)));
			pfree(from);
		}
		cg_history_close_one(e, next);
		e = next;
	}
	return cg_minute_start(e + 1);
}

/*---- the file kept across a clean restart ----*/

/*
 * cg_history_dump: on_shmem_exit of the postmaster: write the rings to
 * CG_HISTORY_FILE, oldest first, through a temporary file renamed into
 * place.  Only after a clean shutdown: not after a crash (code != 0),
 * and not after an immediate stop, which exits with 0 too but leaves no
 * shutdown checkpoint (pg_control's state says which).
 */
static void
cg_history_dump(int code, Datum arg)
{
	CgHistFileHeader h;
	FILE	   *f;
	uint64		first;
	uint64		sfirst;
	uint64		k;
	bool		ok = true;
	ControlFileData *control;
	bool		crc_ok;
	bool		clean;

	if (code != 0 || cg_hist == NULL)
		return;
	/* an immediate stop exits cleanly too: only a shutdown checkpoint counts */
	control = get_controlfile(DataDir, &crc_ok);
	clean = crc_ok && (control->state == DB_SHUTDOWNED ||
					   control->state == DB_SHUTDOWNED_IN_RECOVERY);
	pfree(control);
	if (!clean)
		return;

	memset(&h, 0, sizeof(h));
	h.magic = CG_HISTORY_MAGIC;
	h.format = CG_HISTORY_FORMAT;
	h.system_identifier = GetSystemIdentifier();
	h.record_size = sizeof(CgHistRecord);
	h.server_size = sizeof(CgServerMinute);
	first = cg_hist->next > (uint64) cg_history_size ?
		cg_hist->next - cg_history_size : 0;
	sfirst = cg_hist->server_next > CG_SERVER_MINUTES ?
		cg_hist->server_next - CG_SERVER_MINUTES : 0;
	h.nrecords = cg_hist->next - first;
	h.nserver = cg_hist->server_next - sfirst;
	h.overwritten_early = cg_hist->overwritten_early;

	f = AllocateFile(CG_HISTORY_FILE ".tmp", PG_BINARY_W);
	if (f == NULL)
		ok = false;
	else
	{
		ok = fwrite(&h, sizeof(h), 1, f) == 1;
		for (k = first; ok && k < cg_hist->next; k++)
			ok = fwrite(&cg_hist_records[k % cg_history_size],
						sizeof(CgHistRecord), 1, f) == 1;
		for (k = sfirst; ok && k < cg_hist->server_next; k++)
			ok = fwrite(&cg_hist_server[k % CG_SERVER_MINUTES],
						sizeof(CgServerMinute), 1, f) == 1;
		if (FreeFile(f) != 0)
			ok = false;
	}
	if (ok)
		ok = durable_rename(CG_HISTORY_FILE ".tmp", CG_HISTORY_FILE, LOG) == 0;
	if (!ok)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("conngov: could not write the usage history to \"%s\": %m",
						CG_HISTORY_FILE)));
		unlink(CG_HISTORY_FILE ".tmp");
	}
}

/*
 * cg_history_restore: read the file a clean shutdown left, then remove it
 * (a later crash must not bring it back).  A file of another format or
 * another server, or a short one, is ignored with one LOG line.
 */
static void
cg_history_restore(void)
{
	CgHistFileHeader h;
	FILE	   *f;
	const char *why = NULL;
	uint64		k;
	uint64		skip;

	f = AllocateFile(CG_HISTORY_FILE, PG_BINARY_R);
	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("conngov: could not read the usage history file \"%s\": %m",
							CG_HISTORY_FILE)));
		return;
	}

	if (fread(&h, sizeof(h), 1, f) != 1)
		why = "it is too short";
	else if (h.magic != CG_HISTORY_MAGIC || h.format != CG_HISTORY_FORMAT ||
			 h.record_size != sizeof(CgHistRecord) ||
			 h.server_size != sizeof(CgServerMinute))
		why = "it is not a conngov usage history of this format";
	else if (h.system_identifier != GetSystemIdentifier())
		why = "it was written by another server (system identifier)";
	else
	{
		/* the newest records that fit conngov.history_size */
		skip = h.nrecords > (uint64) cg_history_size ?
			h.nrecords - cg_history_size : 0;
		for (k = 0; why == NULL && k < h.nrecords; k++)
		{
			CgHistRecord r;

			if (fread(&r, sizeof(r), 1, f) != 1)
				why = "it is truncated";
			else if (k >= skip)
			{
				r.budget[NAMEDATALEN - 1] = '\0';
				cg_hist_records[cg_hist->next % Max(cg_history_size, 1)] = r;
				cg_hist->next++;
			}
		}
		skip = h.nserver > CG_SERVER_MINUTES ? h.nserver - CG_SERVER_MINUTES : 0;
		for (k = 0; why == NULL && k < h.nserver; k++)
		{
			CgServerMinute m;

			if (fread(&m, sizeof(m), 1, f) != 1)
				why = "it is truncated";
			else if (k >= skip)
			{
				cg_hist_server[cg_hist->server_next % CG_SERVER_MINUTES] = m;
				cg_hist->server_next++;
			}
		}
		if (why == NULL && fgetc(f) != EOF)
			why = "it has trailing data";
		if (why != NULL)
		{
			cg_hist->next = 0;
			cg_hist->server_next = 0;
		}
		else
			cg_hist->overwritten_early = h.overwritten_early;
	}
	FreeFile(f);
	if (why != NULL)
		ereport(LOG,
				(errmsg("conngov: usage history file \"%s\" ignored: %s",
						CG_HISTORY_FILE, why)));
	unlink(CG_HISTORY_FILE);
}

/*---- SQL ----*/

/*
 * cg_history_span: the minutes a call asks for: every minute that
 * overlaps [since, until], that is whose start is after "*after" (since
 * less a minute) and at most "*to" (until).  NULL means no bound.
 */
static void
cg_history_span(FunctionCallInfo fcinfo, TimestampTz *after, TimestampTz *to)
{
	TimestampTz since = PG_ARGISNULL(0) ? DT_NOBEGIN : PG_GETARG_TIMESTAMPTZ(0);

	*after = TIMESTAMP_NOT_FINITE(since) ? since :
		since - SECS_PER_MINUTE * USECS_PER_SEC;
	*to = PG_ARGISNULL(1) ? DT_NOEND : PG_GETARG_TIMESTAMPTZ(1);
}

/*
 * conngov.history(since, until, budget): the records of the minutes that
 * overlap [since, until], oldest first, of one budget or all.  Copied a
 * batch at a time under history_lock.
 */
#define CG_HISTORY_COLS 11
Datum
conngov_history(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz from;
	TimestampTz to;
	char	   *budget = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	CgHistRecord *batch;
	uint64		k;
	bool		done = false;

	cg_require_shared_state();
	InitMaterializedSRF(fcinfo, 0);
	cg_check_natts(rsinfo->setDesc, CG_HISTORY_COLS, "history");
	cg_history_span(fcinfo, &from, &to);
	if (cg_history_size == 0)
		return (Datum) 0;
	batch = palloc(sizeof(CgHistRecord) * CG_HISTORY_BATCH);

	LWLockAcquire(cg_hist->lock, LW_SHARED);
	k = cg_hist->next > (uint64) cg_history_size ?
		cg_hist->next - cg_history_size : 0;
	LWLockRelease(cg_hist->lock);

	while (!done)
	{
		int			n = 0;
		int			i;
		uint64		first;

		CHECK_FOR_INTERRUPTS();
		LWLockAcquire(cg_hist->lock, LW_SHARED);
		/* records overwritten since the last batch are gone: skip them */
		first = cg_hist->next > (uint64) cg_history_size ?
			cg_hist->next - cg_history_size : 0;
		k = Max(k, first);
		while (n < CG_HISTORY_BATCH && k < cg_hist->next)
			batch[n++] = cg_hist_records[k++ % cg_history_size];
		done = (k >= cg_hist->next);
		LWLockRelease(cg_hist->lock);

		for (i = 0; i < n; i++)
		{
			const CgHistRecord *r = &batch[i];
			Datum		values[CG_HISTORY_COLS];
			bool		nulls[CG_HISTORY_COLS];
			int			j = 0;

			if (r->minute <= from || r->minute > to ||
				(budget != NULL && strcmp(budget, r->budget) != 0))
				continue;
			memset(nulls, 0, sizeof(nulls));
			values[j++] = TimestampTzGetDatum(r->minute);
			values[j++] = CStringGetTextDatum(r->budget);
			values[j++] = Int32GetDatum((int32) Min(r->peak, (uint32) PG_INT32_MAX));
			values[j++] = Int64GetDatum(r->admitted);
			values[j++] = Int64GetDatum(r->refused_limit);
			values[j++] = Int64GetDatum(r->refused_floors);
			values[j++] = Int64GetDatum(r->refused_rate);
			values[j++] = Int64GetDatum(r->would_refuse);
			values[j++] = Int64GetDatum(r->waited);
			values[j++] = Int64GetDatum(r->wait_timeouts);
			values[j++] = Int64GetDatum(r->ended_idle);
			Assert(j == CG_HISTORY_COLS);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	pfree(batch);
	return (Datum) 0;
}

/*
 * conngov.server_history(since, until): one row per closed minute that
 * overlaps [since, until], oldest first.
 */
#define CG_SERVER_HISTORY_COLS 4
Datum
conngov_server_history(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz from;
	TimestampTz to;
	CgServerMinute *rows;
	uint64		first;
	uint64		k;
	int			n = 0;
	int			i;

	cg_require_shared_state();
	InitMaterializedSRF(fcinfo, 0);
	cg_check_natts(rsinfo->setDesc, CG_SERVER_HISTORY_COLS, "server_history");
	cg_history_span(fcinfo, &from, &to);

	/* a week of rows at most (about 200 kB): one copy */
	rows = palloc(sizeof(CgServerMinute) * CG_SERVER_MINUTES);
	LWLockAcquire(cg_hist->lock, LW_SHARED);
	first = cg_hist->server_next > CG_SERVER_MINUTES ?
		cg_hist->server_next - CG_SERVER_MINUTES : 0;
	for (k = first; k < cg_hist->server_next; k++)
	{
		const CgServerMinute *m = &cg_hist_server[k % CG_SERVER_MINUTES];

		if (m->minute > from && m->minute <= to)
			rows[n++] = *m;
	}
	LWLockRelease(cg_hist->lock);

	for (i = 0; i < n; i++)
	{
		Datum		values[CG_SERVER_HISTORY_COLS];
		bool		nulls[CG_SERVER_HISTORY_COLS];
		int			j = 0;

		memset(nulls, 0, sizeof(nulls));
		values[j++] = TimestampTzGetDatum(rows[i].minute);
		values[j++] = Int32GetDatum(rows[i].normal_in_use_peak);
		values[j++] = Int32GetDatum(rows[i].normal_free_min);
		values[j++] = Int32GetDatum(rows[i].waiting_peak);
		Assert(j == CG_SERVER_HISTORY_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(rows);
	return (Datum) 0;
}

/*
 * cg_history_figures: for health(): records held, the oldest minute held
 * (0: none), the records overwritten early and the minutes skipped.
 */
void
cg_history_figures(uint64 *held, TimestampTz *oldest, uint64 *early,
				   uint64 *skipped)
{
	LWLockAcquire(cg_hist->lock, LW_SHARED);
	*held = Min(cg_hist->next, (uint64) cg_history_size);
	*oldest = *held == 0 ? 0 :
		cg_hist_records[(cg_hist->next - *held) % cg_history_size].minute;
	*early = cg_hist->overwritten_early;
	*skipped = cg_hist->skipped;
	LWLockRelease(cg_hist->lock);
}
