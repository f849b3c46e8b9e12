#!/usr/bin/env python
"""Side-by-side speed of the predictive-statistics kernels (issue 5): one run, ratios printed.

CPU (default), for each shape: ``predictive_stats`` as users call it (``validate=True``, the
checks folded into the kernel's read) against the straightforward NumPy implementation
(target >= 8x) and against a parallel numba sum over the same bytes on the same threads
(target >= 40% of that read bandwidth), with the ``validate=False`` figures beside them; ``StreamingPredictive`` fed one pass at
a time against the fused kernel (target <= 1.5x), both with a new accumulator per round
(its memory faulted in each time, as the fused call's outputs are) and with one accumulator
reused through ``reset()``; fed chunks of 8 passes, as the harness feeds MC chunks (target
<= 1.3x fused); streaming peak memory at T=10 and T=200.

``--device cuda``: achieved GB/s of the CUDA paths (numba.cuda kernels and the fused torch
fallback) against a torch reduction over the same tensor, plus a float64 accuracy check. Each
is timed twice: wall time, host launch overhead included, and GPU time alone (CUDA events
around launches queued behind a sleep kernel, so the GPU never waits for the host).
Timings are the best of ``--repeats`` rounds, methods interleaved within each round.
"""

from __future__ import annotations

import argparse
import functools
import os
import tracemalloc
from collections.abc import Callable

import numpy as np

from benchtool.benchmarking import time_call

SHAPES = ((50, 20000, 10), (30, 2000, 1000))
GPU_SLEEP_CYCLES = 100_000_000  # ~50 ms at 2 GHz: longer than the host needs to queue any timed call
MIN_TIMED_COPY_BYTES = 1 << 20  # below this a copy times the call, not the memory: no floor printed
TARGETS = {"vs_numpy": 8.0, "of_bandwidth": 0.40, "stream_over_fused": 1.5, "reset_stream_over_fused": 1.5,
           "chunk_stream_over_fused": 1.3}
CHUNK_PASSES = 8  # streaming fed chunks of this many passes (as the harness feeds MC chunks)


def best_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each function (queued CUDA work included) over ``repeats``
    interleaved rounds, after a warm-up."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], time_call(fn))
    return best


def gpu_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best GPU time of each function, in seconds: its launches queue behind a sleep kernel,
    so the events measure the GPU's work and not the host's launch overhead."""
    import torch

    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda._sleep(GPU_SLEEP_CYCLES)  # private but long-standing: torch's own tests use it
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            best[name] = min(best[name], start.elapsed_time(end) / 1e3)
    return best


def random_probs(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    probs = np.random.default_rng(seed).random(shape, dtype=np.float32)
    probs /= probs.sum(-1, keepdims=True)
    return probs


def streaming_peak_bytes(n: int, c: int, n_pass: int) -> int:
    """Peak bytes traced while streaming ``n_pass`` passes (inputs cycled from a fixed pool)."""
    from benchtool.kernels import StreamingPredictive

    pool = random_probs((4, n, c), seed=1)
    tracemalloc.start()
    acc = StreamingPredictive(n, c)
    for t in range(n_pass):
        acc.update(pool[t % 4], validate=False)
    acc.compute()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def stream_bytes_per_element_pass(group: int, itemsize: int) -> float:
    """Bytes moved per element and pass when streaming one pass at a time, counted like a
    copy (read + write, no write-allocate): the input, the ``group - 1`` of ``group`` passes
    written to the ring and read back at their group's merge, and the float64 mean/M2 read
    and written once per group. The fused kernel reads each element once (``itemsize``)."""
    return itemsize + (group - 1) / group * 2 * itemsize + 32 / group


def run_cpu(shapes: list[tuple[int, int, int]], repeats: int, threads: int | None) -> None:
    import numba

    if threads:
        numba.set_num_threads(threads)

    from benchtool.kernels import StreamingPredictive, predictive_stats
    from benchtool.kernels._cpu import FOLD_EVERY
    from benchtool.kernels.reference import copy_bandwidth, predictive_stats_reference, read_bandwidth_sum

    print(f"CPU: {os.cpu_count()} cores, numba threads={numba.get_num_threads()}")
    for shape in shapes:
        probs = random_probs(shape)
        t, n, c = shape
        ring_and_state = np.ones(StreamingPredictive(n, c, like=probs).nbytes // 4, np.float32)
        copied = np.empty_like(ring_and_state)

        def streamed(probs: np.ndarray = probs) -> object:
            acc = StreamingPredictive(n, c)
            for k in range(t):
                acc.update(probs[k], validate=False)
            return acc.compute()

        def streamed_chunks(probs: np.ndarray = probs) -> object:
            acc = StreamingPredictive(n, c)
            for k in range(0, t, CHUNK_PASSES):
                acc.update(probs[k:k + CHUNK_PASSES], validate=False)
            return acc.compute()

        reused = StreamingPredictive(n, c)

        def streamed_reset(probs: np.ndarray = probs) -> object:
            reused.reset()
            for k in range(t):
                reused.update(probs[k], validate=False)
            return reused.compute()

        times = best_times(
            {
                "read_sum": lambda: read_bandwidth_sum(probs),
                "copy_state": lambda: copy_bandwidth(ring_and_state, copied),
                "fused": lambda: predictive_stats(probs, validate=False),
                "fused+validate": lambda: predictive_stats(probs),
                "stream/pass": streamed,
                "stream/pass reset": streamed_reset,
                f"stream/{CHUNK_PASSES} passes": streamed_chunks,
                "numpy": lambda: predictive_stats_reference(probs),
            },
            repeats,
        )
        gb = probs.nbytes / 1e9
        print(f"\nshape {shape} float32, {gb * 1e3:.0f} MB")
        for name, seconds in times.items():
            moved = 2 * ring_and_state.nbytes / 1e9 if name == "copy_state" else gb
            print(f"  {name:18s} {seconds * 1e3:9.2f} ms  {moved / seconds:7.2f} GB/s")
        copy_rate = 2 * ring_and_state.nbytes / times.pop("copy_state")
        per_element_pass = stream_bytes_per_element_pass(FOLD_EVERY, probs.itemsize)
        floor = probs.size * per_element_pass / copy_rate
        if ring_and_state.nbytes >= MIN_TIMED_COPY_BYTES:
            print(
                f"  memory floor of stream/pass: {floor * 1e3:.2f} ms = {floor / times['fused']:.2f}x fused "
                f"({per_element_pass:g} B per element and pass at the copy rate of a "
                f"ring+state-sized buffer, {copy_rate / 1e9:.1f} GB/s)"
            )
        ratios = {  # the default call, as users make it (validate=True), against the yardsticks
            "vs_numpy": times["numpy"] / times["fused+validate"],
            "of_bandwidth": times["read_sum"] / times["fused+validate"],
            "stream_over_fused": times["stream/pass"] / times["fused"],
            "reset_stream_over_fused": times["stream/pass reset"] / times["fused"],
            "chunk_stream_over_fused": times[f"stream/{CHUNK_PASSES} passes"] / times["fused"],
        }
        for key, value in ratios.items():
            target = TARGETS[key]
            at_most = key.endswith("over_fused")
            ok = value <= target if at_most else value >= target
            sign = "<=" if at_most else ">="
            print(f"  {key:24s} {value:6.2f}  (target {sign} {target})  {'ok' if ok else 'MISSED'}")
        print(f"  validation overhead {times['fused+validate'] / times['fused']:.2f}x; validate=False: "
              f"{times['numpy'] / times['fused']:.2f}x numpy, {times['read_sum'] / times['fused']:.2f} of bandwidth")
    n, c = shapes[0][1:]
    peaks = {n_pass: streaming_peak_bytes(n, c, n_pass) for n_pass in (10, 200)}
    listed = ", ".join(f"T={k}: {v / 1e6:.2f} MB" for k, v in peaks.items())
    print(f"\nstreaming peak traced memory, N={n} C={c}: {listed}")
    print(f"  (float64 state {8 * (2 * n * c + n) / 1e6:.2f} MB; one float32 pass {4 * n * c / 1e6:.2f} MB)")


def run_cuda(shapes: list[tuple[int, int, int]], repeats: int, threads: int | None) -> None:
    import torch

    from benchtool.kernels import StreamingPredictive, predictive_stats
    from benchtool.kernels._backends import CUDA_KERNELS_ENV, numba_cuda_problem

    device = torch.device("cuda")
    print(f"CUDA: {torch.cuda.get_device_name(device)}, torch {torch.version.cuda}")
    problem = numba_cuda_problem()
    paths = ["torch"] if problem else ["numba", "torch"]
    if problem:
        print(f"  numba.cuda unusable: {problem}")
    for shape in shapes:
        probs = torch.rand(shape, device=device)
        probs /= probs.sum(-1, keepdim=True)
        t, n, c = shape
        fns: dict[str, Callable[[], object]] = {"torch sum(0)": lambda: probs.sum(0)}
        for path in paths:

            def fused(path: str = path) -> object:
                os.environ[CUDA_KERNELS_ENV] = path
                return predictive_stats(probs, validate=False)

            def streamed(path: str = path) -> object:
                os.environ[CUDA_KERNELS_ENV] = path
                acc = StreamingPredictive(n, c, like=probs)
                for k in range(t):
                    acc.update(probs[k], validate=False)
                return acc.compute()

            fns[f"{path} fused"] = fused
            fns[f"{path} stream/pass"] = streamed
        wall = best_times(fns, repeats)
        gpu = gpu_times(fns, repeats)
        gb = probs.numel() * 4 / 1e9
        print(f"\nshape {shape} float32, {gb * 1e3:.0f} MB: wall time (host included) | GPU time alone")
        for name in fns:
            share = gpu["torch sum(0)"] / gpu[name]
            print(
                f"  {name:20s} {wall[name] * 1e3:8.3f} ms {gb / wall[name]:7.1f} GB/s | "
                f"{gpu[name] * 1e3:8.3f} ms {gb / gpu[name]:7.1f} GB/s ({share:.0%} of torch sum)"
            )
        sample = probs[:, :256].double()
        mean = sample.mean(0)
        entropy = -torch.special.xlogy(mean, mean).sum(-1)
        expected = -torch.special.xlogy(sample, sample).sum(-1).mean(0)
        for path in paths:
            os.environ[CUDA_KERNELS_ENV] = path
            stats = predictive_stats(probs[:, :256].contiguous())
            assert stats.mean.device.type == "cuda", "results left the device"
            errors = [
                float((stats.entropy.double() - entropy).abs().max()),
                float((stats.mutual_information.double() - (entropy - expected).clamp(min=0)).abs().max()),
                float((stats.variance.double() - sample.var(0, correction=0)).abs().max()),
            ]
            print(f"  {path}: max abs error vs float64 torch: entropy {errors[0]:.1e}, "
                  f"MI {errors[1]:.1e}, var {errors[2]:.1e}")
    os.environ.pop(CUDA_KERNELS_ENV, None)


def run_cuda_crossover(repeats: int, passes: int = 50, classes: int = 10) -> None:
    """Wall time of ``predictive_stats`` per path over sizes: where numba's kernels start to
    beat torch's ops, and whether ``auto`` (the default) is never slower than the torch path."""
    import torch

    from benchtool.kernels import predictive_stats
    from benchtool.kernels._backends import CUDA_KERNELS_ENV, NUMBA_CUDA_MIN_ELEMENTS, numba_cuda_problem

    if numba_cuda_problem():
        return
    print(f"\nwall time per call, T={passes} C={classes}, auto switches to numba at "
          f"{NUMBA_CUDA_MIN_ELEMENTS:.3g} elements")
    print(f"  {'N':>8} {'elements':>10} {'numba ms':>9} {'torch ms':>9} {'auto ms':>9} {'auto/torch':>11} {'numba/torch':>12}")
    for n in (200, 2000, 20_000, 200_000, 1_000_000, 4_000_000):
        probs = torch.rand((passes, n, classes), device="cuda")
        probs /= probs.sum(-1, keepdim=True)

        def call(path: str, probs: torch.Tensor = probs) -> object:
            os.environ[CUDA_KERNELS_ENV] = path
            return predictive_stats(probs, validate=False)

        wall = best_times({path: functools.partial(call, path) for path in ("numba", "torch", "auto")}, repeats)
        print(f"  {n:8d} {probs.numel():10.3g} {wall['numba'] * 1e3:9.3f} {wall['torch'] * 1e3:9.3f} "
              f"{wall['auto'] * 1e3:9.3f} {wall['auto'] / wall['torch']:11.2f} {wall['numba'] / wall['torch']:12.2f}")
        del probs
    os.environ.pop(CUDA_KERNELS_ENV, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="numba threads on CPU (default: all cores)")
    default_shapes = ",".join("x".join(map(str, s)) for s in SHAPES)
    parser.add_argument("--shapes", default=default_shapes, help="T x N x C list, e.g. 50x20000x10,30x2000x1000")
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    (run_cuda if args.device == "cuda" else run_cpu)(shapes, args.repeats, args.threads)  # type: ignore[arg-type]
    if args.device == "cuda":
        run_cuda_crossover(args.repeats)


if __name__ == "__main__":
    main()
