#!/usr/bin/env python3
"""scikit-learn's KMeans on the matrix `KMeansBenchmark` (Sources/Benchmarks/KMeansBenchmark.swift) times, for the
Swift-to-sklearn comparison. Run locally only (never in CI), with the same thread count as the Swift run:

    python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install scikit-learn==1.4.2 numpy h5py threadpoolctl
    # the matrix: KMeansBenchmark.writeMatrix(path) (4,155 × 1,024 float32, dataset `features`)
    /tmp/skvenv/bin/python scripts/bench/bench_kmeans_sklearn.py --matrix /tmp/kmeans_bench.h5 --threads 2

Prints one line per n_init (1 and 10, random_state=0, k-means++, Lloyd, tol 1e-4, max_iter 300): wall-clock
seconds of `fit` (best of --repeats), iterations of the kept run and inertia, in the Swift report's format.
"""
import argparse
import os


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--matrix", required=True, help="HDF5 file with dataset `features` (written by KMeansBenchmark)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    # Before numpy/scikit-learn load their OpenMP and BLAS runtimes.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)

    import time

    import h5py
    import numpy as np
    import sklearn
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with h5py.File(args.matrix, "r") as f:
        x = np.asarray(f["features"], dtype=np.float32)
    print(f"scikit-learn {sklearn.__version__} k-means on a {x.shape[0]} × {x.shape[1]} float32 matrix, "
          f"k = {args.k}, {args.threads} threads")
    with threadpool_limits(limits=args.threads):
        for n_init in (1, 10):
            best = float("inf")
            for _ in range(args.repeats):
                km = KMeans(n_clusters=args.k, n_init=n_init, random_state=0)
                start = time.perf_counter()
                km.fit(x)
                best = min(best, time.perf_counter() - start)
            print(f"n_init {n_init:2d}: {best:.3f} s, {km.n_iter_} iterations, inertia {km.inertia_:.6e}")


if __name__ == "__main__":
    main()
