/*
 * bench_proc.c: CPU and memory readings from /proc and getrusage (see
 * bench_proc.h for why they are shared).
 */
#include "bench_proc.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t bench_proc_self_cpu_ns(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

double bench_proc_self_cpu_s(void)
{
	return (double)bench_proc_self_cpu_ns() / 1e9;
}

uint64_t bench_proc_cpu_ns(int pid)
{
	/* The process CPU-time clock counts every thread the process ever had.
	 * Summing /proc/PID/task/TID/schedstat instead would lose a thread's
	 * whole history when it exits (the ledger writer exits after a second
	 * idle), so a window could come out negative or too cheap. The sum is
	 * the fallback where the clock is refused. */
	clockid_t clk;
	struct timespec ts;
	if (clock_getcpuclockid(pid, &clk) == 0 && clock_gettime(clk, &ts) == 0)
		return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	uint64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char p2[320];
		snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", pid, de->d_name);
		FILE *f = fopen(p2, "r");
		unsigned long long ns = 0;
		if (f) {
			if (fscanf(f, "%llu", &ns) == 1)
				total += ns;
			fclose(f);
		}
	}
	closedir(d);
	return total;
}

long bench_proc_status_kb(int pid, const char *field)
{
	char path[64], line[256];
	if (pid)
		snprintf(path, sizeof path, "/proc/%d/status", pid);
	else
		snprintf(path, sizeof path, "/proc/self/status");
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t flen = strlen(field);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			v = strtol(line + flen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

void bench_proc_unpin(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	for (long i = 0; i < n && i < CPU_SETSIZE; i++)
		CPU_SET((int)i, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		fprintf(stderr, "%s: could not unpin: %s (staying on the parent's cpus)\n", bench_name, strerror(errno));
}

void bench_proc_pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		fprintf(stderr, "%s: could not pin to cpu %d: %s (going on unpinned)\n", bench_name, cpu, strerror(errno));
}

void bench_proc_meter_charge(bench_proc_meter *m, int md, double now)
{
	uint64_t cpu = m->pid ? bench_proc_cpu_ns(m->pid) : 0, self = bench_proc_self_cpu_ns();
	if (md >= 0) {
		m->time[md] += now - m->mark_t;
		m->cpu[md] += cpu - m->mark_cpu;
		m->self[md] += self - m->mark_self;
	}
	m->mark_t = now;
	m->mark_cpu = cpu;
	m->mark_self = self;
}

void bench_proc_meter_rates(const bench_proc_meter *m, int md, uint64_t counted, double *rate, double *cpu_us,
                            double *self_us)
{
	*rate = m->time[md] > 0 ? (double)counted / m->time[md] : 0;
	if (counted) {
		*cpu_us = (double)m->cpu[md] / 1e3 / (double)counted;
		*self_us = (double)m->self[md] / 1e3 / (double)counted;
	}
}

void bench_proc_rotation_start(bench_proc_rotation *r, int pid, int modes, int first, double warmup,
                               double duration, double slice)
{
	double t0 = bench_now_s();
	memset(r, 0, sizeof *r);
	r->mt.pid = pid;
	r->modes = modes;
	r->mode = first;
	r->t_count = t0 + warmup;
	r->t_end = r->t_count + modes * duration;
	r->slice = slice;
	r->slice_start = t0;
}

bool bench_proc_rotation_tick(bench_proc_rotation *r, double now)
{
	bool began = false;
	if (!r->counting && !r->stopping && now >= r->t_count) {
		r->counting = began = true;
		bench_proc_meter_charge(&r->mt, -1, now);
	}
	if (!r->stopping && now >= r->t_end) {
		bench_proc_meter_charge(&r->mt, r->mode, now);
		r->counting = false;
		r->stopping = true;
		r->stop_deadline = now + 2.0;
	}
	if (!r->stopping && now - r->slice_start >= r->slice) {
		if (r->counting)
			bench_proc_meter_charge(&r->mt, r->mode, now);
		r->mode = (r->mode + 1) % r->modes;
		r->slice_start = now;
	}
	return began;
}

long bench_proc_file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}
