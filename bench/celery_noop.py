"""The Celery side of bench/runs.sh: a no-op task through Redis, with results in Redis.

    python celery_noop.py worker    # run by bench/runs.sh in the background
    python celery_noop.py bench N   # enqueue N tasks at once, wait for every result

Prints the throughput in tasks per second, from the first enqueue to the last result.
"""

import sys
import time

from celery import Celery

REDIS = "redis://127.0.0.1:6379/15"
app = Celery("celery_noop", broker=REDIS, backend=REDIS)
app.conf.update(
    task_acks_late=True,  # like agentd: a task taken by a dead worker is done again
    worker_prefetch_multiplier=4,
    result_expires=3600,
    broker_connection_retry_on_startup=True,
)


@app.task
def noop(i):
    return i


def bench(n):
    # Warm up the worker and the connections.
    [r.get(timeout=60) for r in [noop.delay(-1) for _ in range(50)]]
    started = time.perf_counter()
    results = [noop.delay(i) for i in range(n)]
    enqueued = time.perf_counter() - started
    for r in results:
        r.get(timeout=600)
    took = time.perf_counter() - started
    print(
        f"celery: {n} no-op tasks in {took:.2f} s: {n / took:.0f} tasks/s "
        f"(enqueueing alone took {enqueued:.2f} s: {n / enqueued:.0f} tasks/s)"
    )


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        app.worker_main(["worker", "--loglevel=warning", "--concurrency", sys.argv[2] if len(sys.argv) > 2 else "2"])
    else:
        bench(int(sys.argv[2]))
