#!/usr/bin/env python3
"""Show that benchmarks/conftest.py's timer makes GPU timings real (run by scripts/gpu-check).

Runs benchmarks/test_cuda_timer_bench.py twice side by side: with the conftest's
synchronizing timer and with a plain ``time.perf_counter``, plus a CUDA-events reference,
and prints the three medians and the GPU fields of pytest-benchmark's machine_info.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

BENCH = "benchmarks/test_cuda_timer_bench.py"
ARGS = ["--benchmark-only", "-q", "-p", "no:cacheprovider", "--benchmark-max-time=0.5"]


def pytest_median(out: Path, name: str, *extra: str) -> dict:
    target = out / f"bench-{name}.json"
    subprocess.run([sys.executable, "-m", "pytest", BENCH, *ARGS, f"--benchmark-json={target}", *extra], check=True)
    return json.loads(target.read_text())


def cuda_events_median_ms(size: int = 4096, repeats: int = 50) -> float:
    generator = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(size, size, device="cuda", generator=generator)
    b = torch.randn(size, size, device="cuda", generator=generator)
    for _ in range(5):
        torch.mm(a, b)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        torch.mm(a, b)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[repeats // 2]


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gpu-check")
    out.mkdir(parents=True, exist_ok=True)
    synced = pytest_median(out, "sync")
    plain = pytest_median(out, "plain", "--benchmark-timer=time.perf_counter")
    reference = cuda_events_median_ms()
    for name, data in (("synchronizing timer", synced), ("plain perf_counter", plain)):
        bench = data["benchmarks"][0]
        print(f"{name}: median {bench['stats']['median'] * 1e3:.4f} ms (timer {bench['options']['timer']})")
    print(f"CUDA events reference: median {reference:.4f} ms")
    info = synced["machine_info"]
    print(f"machine_info: gpus={info.get('gpus')} driver={info.get('gpu_driver')} cuda={info.get('cuda')}")
    synced_ms = synced["benchmarks"][0]["stats"]["median"] * 1e3
    return 0 if abs(synced_ms - reference) <= 0.25 * reference and info.get("gpus") else 1


if __name__ == "__main__":
    raise SystemExit(main())
