/*
 * bench_proc.h: readings of a process (CPU time, memory) and where it runs.
 *
 * Why this exists: a benchmark's figure is a cost per operation, and on a
 * shared machine wall time says little about it. The broker's on-CPU time
 * (schedstat, every thread) and the load generator's own CPU time say who
 * did the work; /proc/PID/status says what memory it took. Several benches
 * read these, and must read them the same way to be compared.
 */
#ifndef IOTGUARD_BENCH_PROC_H
#define IOTGUARD_BENCH_PROC_H

#include <stdbool.h>
#include <stdint.h>

/* This process, user + system, in ns. */
uint64_t bench_proc_self_cpu_ns(void);
/* The same in seconds. */
double bench_proc_self_cpu_s(void);
/* On-CPU time of every thread process pid ever ran (a broker: its event loop
 * and ledger writer, also after the writer exits), from its CPU-time clock:
 * a cost per operation that does not depend on how much of its core the
 * broker got. 0 if unreadable. */
uint64_t bench_proc_cpu_ns(int pid);
/* A field of /proc/PID/status in kB ("VmRSS", "RssAnon", "VmHWM"); pid 0 is
 * this process; -1 if absent. */
long bench_proc_status_kb(int pid, const char *field);
/* Pins the calling process to one CPU (cpu < 0: leaves it alone); a failure
 * is reported and the run goes on unpinned. */
void bench_proc_pin(int cpu);
/* Lets the calling process run on every online CPU. A forked child inherits
 * its parent's pin, so a child meant to be unpinned (the scale run's broker,
 * whose start replays on two threads) must say so. */
void bench_proc_unpin(void);
/* Wall time and CPU (a broker's, pid 0 for none, and this process's) charged
 * to the mode that was running, for runs that switch between modes every
 * slice so that a burst of load from elsewhere hits every mode alike. */
#define BENCH_PROC_METER_MODES 4
typedef struct bench_proc_meter {
	int pid;
	double time[BENCH_PROC_METER_MODES];
	uint64_t cpu[BENCH_PROC_METER_MODES], self[BENCH_PROC_METER_MODES];
	double mark_t;
	uint64_t mark_cpu, mark_self;
} bench_proc_meter;

/* Charges what passed since the last mark to mode md (md < 0: only sets the
 * mark). */
void bench_proc_meter_charge(bench_proc_meter *m, int md, double now);

/* Per mode md, for `counted` operations: rate per second of the mode's wall
 * time, and broker and own CPU us per operation (0 when nothing counted). */
void bench_proc_meter_rates(const bench_proc_meter *m, int md, uint64_t counted, double *rate, double *cpu_us,
                            double *self_us);

/* The clock of a run that rotates through `modes` modes every `slice`
 * seconds: a warm-up, then modes x duration of timed load charged to the
 * running mode, then up to 2 s for what is in flight to arrive. */
typedef struct bench_proc_rotation {
	bench_proc_meter mt;
	int modes, mode;              /* mode: what to send now */
	double t_count, t_end, slice, slice_start, stop_deadline;
	bool counting, stopping;
} bench_proc_rotation;

void bench_proc_rotation_start(bench_proc_rotation *r, int pid, int modes, int first, double warmup,
                               double duration, double slice);
/* Moves the clock to now; true when counting has just begun (the caller
 * notes its counters then). */
bool bench_proc_rotation_tick(bench_proc_rotation *r, double now);

/* Size of a file in bytes, -1 if it cannot be read. */
long bench_proc_file_size(const char *path);

#endif
