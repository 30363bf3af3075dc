/* hw_parallel.c -- see hw_parallel.h.
 *
 * Chunk i always covers [n_tasks*i/chunks, n_tasks*(i+1)/chunks) and runs with
 * thread_index i, whichever OS thread runs it, so results and per-chunk
 * scratch never depend on scheduling.
 *
 * A small persistent pool serves the calls: helper threads are started once
 * (as many as the largest n_threads seen, up to HW_MAX_THREADS - 1), and after
 * a call they spin for up to a quarter of a millisecond before sleeping, so back-to-back
 * kernel calls (a model's layers) find them running -- no thread start per
 * call, no wake-up latency.  Chunks are claimed from a shared word: the calling
 * thread runs chunk 0 and then any chunk no helper has claimed, so a helper the
 * OS schedules late delays nothing; the caller waits only for chunks already
 * running.  One call uses the pool at a time; a concurrent or nested call (or
 * a forked child before its pool is rebuilt) runs its chunks inline, in order,
 * with the same ranges and indices.
 */
#define _GNU_SOURCE   /* sched_getcpu, pthread_setaffinity_np */
#include <pthread.h>
#include <sched.h>
#include <sys/types.h>
#include <unistd.h>
#include "hw_parallel.h"

#define HW_MAX_THREADS 64
#define HW_SPIN_ROUNDS 5000    /* x86 PAUSE is ~40-140 cycles: at most about 0.25 ms */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* The one job in flight.  `state` packs (generation << 16) | (chunks << 8) |
 * next-unclaimed-chunk, so a helper can never claim a chunk of a job other than
 * the one whose generation it woke for. */
static struct {
    pthread_mutex_t call_lock;    /* held by the call using the pool */
    pthread_mutex_t lock;         /* guards done, sleepers and the condition variables */
    pthread_cond_t wake;          /* helpers sleep here between calls */
    pthread_cond_t all_done;      /* the caller waits here for running chunks */
    uint64_t state;               /* atomic */
    uint64_t generation;          /* atomic: bumped once per job */
    hw_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    int done;
    int helpers;                  /* started helper threads (under call_lock) */
    pid_t pid;                    /* process that started them (fork check) */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, 0};

/* Claim the next chunk of job `gen` (*chunks receives its chunk count); -1
 * when none is left or the job is no longer the current one. */
/* Helper threads and the CPU each was last bound to (-1: not bound); under call_lock. */
static pthread_t helper_tids[HW_MAX_THREADS];
static int helper_cpu[HW_MAX_THREADS];

static int claim(uint64_t gen, int *chunks)
{
    uint64_t s = __atomic_load_n(&pool.state, __ATOMIC_ACQUIRE);
    for (;;) {
        if ((s >> 16) != gen || (s & 0xff) >= ((s >> 8) & 0xff)) return -1;
        if (__atomic_compare_exchange_n(&pool.state, &s, s + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            *chunks = (int)((s >> 8) & 0xff);
            return (int)(s & 0xff);
        }
    }
}

static void run_chunk(int i, int chunks)
{
    pool.fn(pool.ctx, pool.n_tasks * i / chunks, pool.n_tasks * (i + 1) / chunks, i);
    pthread_mutex_lock(&pool.lock);
    if (++pool.done == chunks) pthread_cond_signal(&pool.all_done);
    pthread_mutex_unlock(&pool.lock);
}

static void *helper(void *arg)
{
    (void)arg;
    uint64_t seen = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE);
    for (;;) {
        uint64_t gen = seen;
        for (int r = 0; r < HW_SPIN_ROUNDS && gen == seen; r++) {
            cpu_relax();
            gen = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE);
        }
        if (gen == seen) {
            pthread_mutex_lock(&pool.lock);
            while ((gen = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE)) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = gen;
        /* fn, ctx, n_tasks of job `gen` stay valid while one of its chunks is
         * claimed and unfinished: its caller is waiting for that chunk. */
        int i, chunks;
        while ((i = claim(gen, &chunks)) >= 0) run_chunk(i, chunks);
    }
    return 0;
}

/* A forked child has none of the parent's helpers, and a lock a helper held at
 * the fork would never be released: start the child's pool afresh. */
static void reset_in_child(void)
{
    pthread_mutex_init(&pool.call_lock, 0);
    pthread_mutex_init(&pool.lock, 0);
    pthread_cond_init(&pool.wake, 0);
    pthread_cond_init(&pool.all_done, 0);
    pool.helpers = 0;
    pool.pid = getpid();
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(0, 0, reset_in_child); }

/* Keep helpers off the caller's CPU.  A helper woken after it slept may be
 * placed beside its waker and then spins or works on the caller's core while
 * another core idles; calls shorter than the scheduler's rebalancing then gain
 * nothing from it.  Each helper h is bound to the (h+1)-th CPU after the
 * caller's in the process's allowed set; nothing is bound when the set holds
 * one CPU or the calls fail. */
static void place_helpers(int n)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) < 2) return;
    int here = sched_getcpu();
    if (here < 0) return;
    int cpu = here;
    for (int h = 0; h < n; h++) {
        do cpu = (cpu + 1) % CPU_SETSIZE; while (!CPU_ISSET(cpu, &allowed));
        if (cpu == here) return;                      /* fewer CPUs than helpers: leave the rest */
        if (helper_cpu[h] == cpu) continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (pthread_setaffinity_np(helper_tids[h], sizeof(one), &one) == 0) helper_cpu[h] = cpu;
    }
}

int hw_parallel_chunks(int64_t n_tasks, int n_threads)
{
    if (n_tasks <= 0) return 1;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > HW_MAX_THREADS) n_threads = HW_MAX_THREADS;
    if ((int64_t)n_threads > n_tasks) n_threads = (int)n_tasks;
    return n_threads;
}

static void run_inline(int64_t n_tasks, int chunks, hw_task_fn fn, void *ctx)
{
    for (int i = 0; i < chunks; i++) fn(ctx, n_tasks * i / chunks, n_tasks * (i + 1) / chunks, i);
}

int hw_parallel_for(int64_t n_tasks, int n_threads, hw_task_fn fn, void *ctx)
{
    int chunks = hw_parallel_chunks(n_tasks, n_threads);
    if (n_tasks <= 0) return chunks;
    pthread_once(&atfork_once, register_atfork);
    if (chunks == 1 || pthread_mutex_trylock(&pool.call_lock) != 0) {
        run_inline(n_tasks, chunks, fn, ctx);
        return chunks;
    }
    if (pool.pid != getpid()) {        /* first use, or a forked child: no helpers here yet */
        pool.pid = getpid();
        pool.helpers = 0;
    }
    while (pool.helpers < chunks - 1) {
        pthread_attr_t attr;
        pthread_t tid;
        if (pthread_attr_init(&attr) != 0) break;
        int ok = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0
                 && pthread_create(&tid, &attr, helper, 0) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break;               /* the caller runs whatever the helpers do not */
        helper_tids[pool.helpers] = tid;
        helper_cpu[pool.helpers] = -1;
        pool.helpers++;
    }
    place_helpers(chunks - 1);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n_tasks = n_tasks;
    pthread_mutex_lock(&pool.lock);
    pool.done = 0;
    uint64_t gen = (__atomic_load_n(&pool.generation, __ATOMIC_RELAXED) + 1) & 0xffffffffffffull;
    /* chunk 0 is the caller's: publish the job with next = 1 */
    __atomic_store_n(&pool.state, (gen << 16) | ((uint64_t)chunks << 8) | 1u, __ATOMIC_RELEASE);
    __atomic_store_n(&pool.generation, gen, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    run_chunk(0, chunks);
    int i, same;
    while ((i = claim(gen, &same)) >= 0) run_chunk(i, chunks);
    pthread_mutex_lock(&pool.lock);
    while (pool.done < chunks) pthread_cond_wait(&pool.all_done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.call_lock);
    return chunks;
}
