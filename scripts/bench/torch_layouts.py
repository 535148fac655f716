"""Layouts RxT for the PyTorch references of `bench aff` and `bench deeplab` (bench_aff_torch.py,
bench_deeplab_torch.py): R spawned processes of T threads each, with batch/R images, started together, as `mpirun -n R
--threads T` runs pcs-mpi (without the gradient all-reduce, which only favours PyTorch)."""
import multiprocessing as mp
import queue as queues
import sys
import time


def collect(procs, queue):
    """One result per process; exits when a process ends without one (its traceback is on stderr), instead of waiting
    for it forever."""
    results = []
    while len(results) < len(procs):
        try:
            results.append(queue.get(timeout=5))
        except queues.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                for p in procs:
                    p.kill()
                sys.exit("a training process failed (see above)")
    for p in procs:
        p.join()
    return results


def run_layouts(args, worker):
    """Yields a row per layout of args.layouts, each from R processes of `worker(args, threads, args.batch // R, start, queue)`: each waits at
    the barrier `start` after its untimed step, then queues (seconds of args.steps timed steps, ru_maxrss MiB, extra
    dict). Rows: images/s = batch · steps / the slowest process's seconds, the step's seconds, the largest peak, and
    the first process's extra keys."""
    ctx = mp.get_context("spawn")
    for layout in args.layouts.split(","):
        ranks, threads = (int(v) for v in layout.split("x"))
        assert args.batch % ranks == 0, f"batch {args.batch} does not split over {ranks}"
        start, queue = ctx.Barrier(ranks), ctx.Queue()
        procs = [ctx.Process(target=worker, args=(args, threads, args.batch // ranks, start, queue)) for _ in range(ranks)]
        for p in procs:
            p.start()
        results = collect(procs, queue)
        seconds = max(r[0] for r in results)
        row = {"what": f"train {ranks}x{threads}", "ranks": ranks, "threads": threads,
               "images_per_s": args.batch * args.steps / seconds, "step_s": seconds / args.steps,
               "peak_mib": max(r[1] for r in results), **results[0][2]}
        yield row


def timed_steps(step, steps, start, queue, extra=None):
    """The worker's part after its untimed step: wait for the others, time `steps` calls of step(i) (i from 2),
    queue the result."""
    import resource
    start.wait()
    t0 = time.perf_counter()
    for i in range(2, steps + 2):
        step(i)
    queue.put((time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, extra or {}))
