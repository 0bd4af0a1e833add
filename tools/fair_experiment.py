#!/usr/bin/env python
"""The fair tokenizer experiment (chapter 06): Λ24-SQ vs BSQ vs VQ vs random codes, same encoder/decoder and recipe.

Protocol (see chapter 06, "A fair comparison"):
- datasets: Fashion-MNIST (60k / 10k, patch 7: 16 tokens of 49 values) and photo crops (32 px RGB, patch 8: 16 tokens of
  192 values, the paper's values-per-token ratio); evaluation on every image of the test split (all unique);
- training: the tiny tokenizer's width/depth, GAN off (so no discriminator shares the tokenizer's optimizer or clip),
  L1 + the gradient-L1 perceptual fallback, AdamW with warm-up + cosine; the learning rate is chosen per (dataset,
  variant) from LRS on seed 0 (best test PSNR), then seeds 1 and 2 run at that rate; data order and initial weights
  depend on the seed only, so differences between variants at one seed are paired;
- diagnostics over training on the first DIAG_IMAGES test images: cos(u, code), median top-1/top-2 margin, share of
  margins < 0.005, codes used, perplexity.

Every finished run is one JSON file in --out (default results/fair_runs/); `--finish` merges them into
results/tokenizer_fair.json. Workers claim jobs with O_EXCL files, so several processes (or a rerun after an
interruption) never run a job twice; a claimed job whose worker died is reclaimed with --reclaim.

    python tools/fair_experiment.py --workers 2              # run everything that is missing, 2 processes x 1 thread
    python tools/fair_experiment.py --smoke --out /tmp/fs    # the whole path in a minute
    python tools/fair_experiment.py --finish                 # merge into results/tokenizer_fair.json
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from leech_explorer.fair import FAIR_DATASETS as DATASETS, FAIR_VARIANTS as VARIANTS, FAIR_PRIORITY as PRIORITY
from leech_explorer.fair import FAIR_RECIPE as RECIPE, FAIR_BASE as BASE, run_fair_job
SMOKE = dict(RECIPE, steps=6, batch_size=8, warmup=2, lrs=(2e-3, 4e-3), seeds=(0, 1), diag_every=3, diag_images=8)


def job_name(j: dict) -> str:
    long = f"__x{j['long']}" if j.get('long', 1) != 1 else ''
    name = f"{j['dataset']}__{j['variant']}__{j['estimator']}__s{j['seed']}__lr{j['lr']:g}{long}"
    return name.replace('Λ', 'L').replace(' + ', '+').replace(' ', '_').replace('/', '-')        # ASCII file names


def all_jobs(recipe: dict, done: dict) -> tuple[list[dict], int]:
    "Jobs runnable now (grid jobs, and seed jobs whose (dataset, variant, estimator) grid is complete), and how many wait."
    ready, waiting = [], 0
    for d in DATASETS:
        for v, (_, _, ests) in VARIANTS.items():
            for e in ests:
                grid = [dict(dataset=d, variant=v, estimator=e, seed=recipe['seeds'][0], lr=lr) for lr in recipe['lrs']]
                ready += grid
                rows = [done.get(job_name(g)) for g in grid]
                if any(r is None for r in rows): waiting += len(recipe['seeds']); continue
                best = max(rows, key=lambda r: r['psnr'])['lr']
                ready += [dict(dataset=d, variant=v, estimator=e, seed=s, lr=best) for s in recipe['seeds'][1:]]
                ready.append(dict(dataset=d, variant=v, estimator=e, seed=recipe['seeds'][0], lr=best, long=recipe['long_factor']))
    ready.sort(key=lambda j: (j.get('long', 1) != 1, PRIORITY.index((j['variant'], j['estimator']))))   # stable: grid before seeds

    return ready, waiting


def finished(out: Path) -> dict:
    res = {}
    for p in out.glob('*.json'):
        try: r = json.loads(p.read_text())
        except json.JSONDecodeError: continue
        res[job_name(r)] = r                                    # keyed by what the run is, whatever its file is called
    return res


def worker(out: Path, recipe: dict, device: str, threads: int, wid: int):
    import torch
    torch.set_num_threads(threads)
    claims = out / 'claims'; claims.mkdir(parents=True, exist_ok=True)
    while True:
        done = finished(out)
        ready, waiting = all_jobs(recipe, done)
        todo = [j for j in ready if job_name(j) not in done and not (claims / job_name(j)).exists()]
        if not todo:
            if waiting == 0 or not any((claims / job_name(j)).exists() and job_name(j) not in done for j in ready): return
            time.sleep(10); continue
        j = todo[0]; name = job_name(j)
        try: os.close(os.open(claims / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError: continue
        print(f"[worker {wid}] {name}", flush=True)
        try: row = run_fair_job(j, recipe, device)
        except Exception as e:                                    # recorded, not fatal: the other jobs go on
            import traceback
            (out / f'{name}.error').write_text(traceback.format_exc()); print(f"[worker {wid}] FAILED {name}: {e!r}", flush=True)
            continue
        tmp = out / f'{name}.json.tmp'; tmp.write_text(json.dumps(row)); tmp.replace(out / f'{name}.json')
        print(f"[worker {wid}] done {name}: PSNR {row['psnr']:.2f} dB in {row['seconds']:.0f} s", flush=True)
        os.execv(sys.executable, [sys.executable] + sys.argv)       # a fresh process per job: memory, and edits to this file, start clean


def finish(out: Path, dest: Path):
    rows = sorted(finished(out).values(), key=lambda r: (r['dataset'], r['variant'], r['estimator'], r['seed'], r['lr']))
    grid = {}
    for r in rows:
        if r['seed'] == 0 and r.get('long', 1) == 1: grid.setdefault((r['dataset'], r['variant'], r['estimator']), []).append(r)
    chosen = {k: max(v, key=lambda r: r['psnr'])['lr'] for k, v in grid.items()
              if {r['lr'] for r in v} >= set(RECIPE['lrs'])}      # only once the whole grid has run: no rate is chosen from part of it
    for r in rows: r['chosen_lr'] = r['lr'] == chosen.get((r['dataset'], r['variant'], r['estimator'])) and r.get('long', 1) == 1
    dest.write_text(json.dumps(dict(recipe=RECIPE, base=BASE, variants={k: dict(changes=v[0], bits=v[1], estimators=v[2])
                                                                         for k, v in VARIANTS.items()},
                                    datasets={k: v[1] for k, v in DATASETS.items()}, rows=rows)))
    n = sum(r['chosen_lr'] for r in rows)
    print(f"{len(rows)} runs ({n} at the chosen learning rate) -> {dest}")


def summary(dest: Path) -> str:
    "The README's table: runs at the chosen learning rates, mean ± sample std over seeds, and paired differences."
    import statistics
    from leech_explorer.fair import chosen_rows, paired_differences
    rows = chosen_rows(json.loads(dest.read_text())['rows'])
    def ms(rs, k):
        v = [r[k] for r in rs]
        return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"
    out = ['| dataset | variant | estimator | bits | lr | seeds | PSNR (dB) | SSIM | cos(u, code) | codes used | params |',
           '|---|---|---|---|---|---|---|---|---|---|---|']
    for v, e in PRIORITY:
        for d in DATASETS:
            rs = [r for r in rows if (r['dataset'], r['variant'], r['estimator']) == (d, v, e)]
            if not rs: continue
            out.append(f"| {d} | {v} | {e} | {rs[0]['bits']:.1f} | {rs[0]['lr']:g} | {len(rs)} | {ms(rs, 'psnr')} | "
                       f"{statistics.mean(r['ssim'] for r in rs):.3f} | {statistics.mean(r['cos_to_code'] for r in rs):.3f} | "
                       f"{statistics.mean(r['codes_used'] for r in rs):,.0f} | {rs[0]['params']:,} |")
    out += ['', '| dataset | Λ24-SQ (ste) minus | seeds | PSNR difference (dB) | 95% interval |', '|---|---|---|---|---|']
    for p in paired_differences(rows):
        out.append(f"| {p['dataset']} | {p['other']} | {p['n']} | {p['mean']:+.2f} | "
                   + (f"[{p['lo']:+.2f}, {p['hi']:+.2f}] |" if p['n'] > 1 else "— |"))
    return '\n'.join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', type=Path, default=ROOT / 'results' / 'fair_runs')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--threads', type=int, default=1, help='torch threads per worker')
    p.add_argument('--device', default='cpu')
    p.add_argument('--smoke', action='store_true', help='tiny recipe: tests the whole path in a minute')
    p.add_argument('--reclaim', action='store_true', help='forget claims of unfinished jobs (after an interruption)')
    p.add_argument('--finish', action='store_true', help='merge the runs into results/tokenizer_fair.json')
    p.add_argument('--summary', action='store_true', help="print the README's tables from results/tokenizer_fair.json")
    p.add_argument('--worker-id', type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    recipe = SMOKE if a.smoke else RECIPE
    a.out.mkdir(parents=True, exist_ok=True)
    if a.summary: return print(summary(ROOT / 'results' / 'tokenizer_fair.json'))
    if a.finish: return finish(a.out, ROOT / 'results' / ('tokenizer_fair_smoke.json' if a.smoke else 'tokenizer_fair.json'))
    if a.worker_id is not None: return worker(a.out, recipe, a.device, a.threads, a.worker_id)
    if a.reclaim:
        done = finished(a.out)
        for c in (a.out / 'claims').glob('*'):
            if c.name not in done: c.unlink()
    env = os.environ | dict(OMP_NUM_THREADS=str(a.threads), PYTHONUNBUFFERED='1')
    procs = [subprocess.Popen([sys.executable, __file__, '--out', str(a.out), '--threads', str(a.threads), '--device', a.device,
                               '--worker-id', str(w)] + (['--smoke'] if a.smoke else []), env=env) for w in range(a.workers)]
    sys.exit(max(p.wait() for p in procs))


if __name__ == '__main__':
    main()
