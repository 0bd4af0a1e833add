"""The multi-scale tokenizer's runs (chapter 07d, section 1): gains 'unit' vs 'decay', with and without prefix training.

Each run trains chapter 06's tiny tokenizer on MNIST with Λ24-SQ codes on the scales 1, 2, 3, 5, 7 (`train_tokenizer`, the
same recipe as the shipped single-scale `mnist-tiny`, seed 0) and measures the PSNR of the images decoded from every
prefix of scales on the whole test split. Rows go to results/tokenizer_multiscale.json; `--ship NAME` copies that run into
the package as the shipped `mnist-tiny-ms` tokenizer.

    python tools/multiscale_runs.py                            # every run of RUNS that is not recorded yet
    python tools/multiscale_runs.py --ship unit-p0.15           # and ship that one
"""
from __future__ import annotations
import argparse, json, shutil, time, sys
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
RUNS = {'unit-p0': ('unit', 0.0), 'decay-p0': ('decay', 0.0), 'unit-p0.15': ('unit', 0.15), 'decay-p0.15': ('decay', 0.15),
        'unit-p0.3': ('unit', 0.3)}
SCALES = (1, 2, 3, 5, 7)


def prefix_psnr(tok, images: torch.Tensor) -> list[float]:
    "Mean PSNR of the images decoded from the first k scales' tokens, k = 1..K."
    from leech_explorer.metrics import psnr
    with torch.no_grad():
        grids = tok.encode(images)
        return [float(psnr(tok.decode(grids[:k]).clamp(0, 1), images).mean()) for k in range(1, len(grids) + 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=600)
    ap.add_argument('--runs', default=','.join(RUNS), help=f'comma-separated names from {list(RUNS)}')
    ap.add_argument('--work', default=str(ROOT / 'tokenizers' / 'multiscale'), help='folder for the trained runs')
    ap.add_argument('--out', default=str(ROOT / 'results' / 'tokenizer_multiscale.json'))
    ap.add_argument('--ship', default=None, help='copy this run into the package as mnist-tiny-ms')
    a = ap.parse_args()
    names = a.runs.split(',')
    if bad := [n for n in names if n not in RUNS]: sys.exit(f"unknown runs {bad}; choose from {list(RUNS)}")
    from leech_explorer.tokenizer import train_tokenizer, Tokenizer, PRETRAINED_DIR
    from leech_explorer.data import load_images
    test = load_images('mnist', 'test'); x = torch.stack([test[i][0] for i in range(len(test))])
    train = load_images('mnist', 'train'); mean = torch.stack([train[i][0] for i in range(len(train))]).mean(0)
    out = Path(a.out); rec = json.loads(out.read_text()) if out.exists() else dict(rows=[])
    rec['mean_image_psnr'] = float((-10 * torch.log10(((x - mean) ** 2).flatten(1).mean(1))).mean())
    rec['single_scale'] = json.loads((PRETRAINED_DIR / 'mnist-tiny-tokenizer' / 'metrics.json').read_text())['test_psnr']
    done = {(r['name'], r['steps']) for r in rec['rows']}
    for n in names:
        if (n, a.steps) in done: continue
        gains, pp = RUNS[n]
        t0, c0 = time.time(), time.process_time()
        folder = train_tokenizer('tiny', 'leech', 'mnist', steps=a.steps, out=Path(a.work) / f'{n}-s{a.steps}', seed=0,
                                 progress=False, scales=SCALES, gains=gains, prefix_prob=pp)
        tok = Tokenizer.from_pretrained(folder)
        row = dict(name=n, gains=gains, prefix_prob=pp, scales=list(SCALES), steps=a.steps, prefix_psnr=prefix_psnr(tok, x),
                   test_images=len(x), seconds=round(time.time() - t0, 1), cpu_seconds=round(time.process_time() - c0, 1),
                   threads=torch.get_num_threads(), device='cpu', folder=str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder))
        rec['rows'].append(row); out.write_text(json.dumps(rec, indent=1))
        print(n, ' '.join(f'{v:.2f}' for v in row['prefix_psnr']), f"{row['seconds']:.0f} s", flush=True)
    if a.ship:
        row = next((r for r in rec['rows'] if r['name'] == a.ship and r['steps'] == a.steps), None)
        if row is None: sys.exit(f"no recorded run {a.ship} at {a.steps} steps")
        dest = PRETRAINED_DIR / 'mnist-tiny-ms-tokenizer'
        if dest.exists(): shutil.rmtree(dest)
        shutil.copytree(ROOT / row['folder'], dest, ignore=shutil.ignore_patterns('last.safetensors*', '*.tmp'))
        m = json.loads((dest / 'metrics.json').read_text()); m['prefix_psnr'] = row['prefix_psnr']
        (dest / 'metrics.json').write_text(json.dumps(m, indent=1))
        rec['shipped'] = a.ship; out.write_text(json.dumps(rec, indent=1))
        print('shipped', a.ship, '->', dest)


if __name__ == '__main__':
    main()
