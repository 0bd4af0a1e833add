#!/usr/bin/env python
"""Numba threading layers under PyTorch: two single-thread Λ24-SQ tokenizer trainings sharing the CPU, per layer.

    .venv/bin/python tools/bench_threading_layer.py [--steps 150] [--layers omp workqueue] [--out results/cpu_threading_layer.json]

Each layer runs in fresh processes (the layer is fixed at numba's first parallel launch, from NUMBA_THREADING_LAYER):
two processes at once, each with torch.set_num_threads(1), like several experiment runs sharing a small machine. It
prints the wall-clock seconds per layer and the ratio to the first layer, measured in the same run, and writes them to
--out. Chapter 03a explains the result.
"""
from __future__ import annotations
import argparse, json, os, platform, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys, time, tempfile, torch
torch.set_num_threads(1)
from leech_explorer.tokenizer import train_tokenizer
import numba
t = time.perf_counter()
train_tokenizer('tiny', steps=int(sys.argv[1]), out=tempfile.mkdtemp(), progress=False, seed=int(sys.argv[2]))
print(time.perf_counter() - t, numba.threading_layer())
"""


def run_layer(layer: str, steps: int, procs: int) -> dict:
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, '-c', CHILD, str(steps), str(k)], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True) for k in range(procs)]
    outs = [p.communicate()[0].split() for p in ps]
    if any(p.returncode for p in ps): raise SystemExit(f"a {layer} run failed")
    return dict(layer=layer, wall_seconds=round(time.perf_counter() - t, 1), run_seconds=[round(float(o[0]), 1) for o in outs],
                numba_layer=outs[0][1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=150); p.add_argument('--procs', type=int, default=2)
    p.add_argument('--layers', nargs='+', default=['omp', 'workqueue']); p.add_argument('--out', default=None)
    a = p.parse_args()
    rows = [run_layer(l, a.steps, a.procs) for l in a.layers]
    for r in rows:
        print(f"{r['layer']:10} {r['wall_seconds']:7.1f} s wall, runs {r['run_seconds']}, x{rows[0]['wall_seconds'] / r['wall_seconds']:.2f} vs {rows[0]['layer']}")
    if a.out:
        Path(a.out).write_text(json.dumps(dict(command='tools/bench_threading_layer.py ' + ' '.join(sys.argv[1:]),
                                               machine=f"{platform.machine()}, {os.cpu_count()} CPUs", steps=a.steps,
                                               processes=a.procs, torch_threads=1, rows=rows), indent=1))


if __name__ == '__main__':
    main()
