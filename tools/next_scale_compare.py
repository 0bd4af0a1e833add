"""Raster vs next-scale generation on MNIST, measured in one run (chapter 07d).

For each generator: the classifier score of 20 samples per class at guidance 2 (the judge of chapter 07c, trained on
real training digits), gFID and precision/recall against one shared reference (Inception features of 200 real test
digits), for several sampling seeds; sampling speed of both models in the same run, interleaved, best of --reps, on
--speed-threads threads; the time of one training step of both models in the same run, and parameters and training time from each model's
metrics.json. Writes
results/generator/next_scale.json (read and checked by chapter 07d).

    python tools/next_scale_compare.py                                  # the shipped mnist-tiny and mnist-tiny-ns
    python tools/next_scale_compare.py --raster DIR --next-scale DIR2 --seeds 0 1 2 --out /tmp/ns.json
"""
import argparse, json, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]


def speed(models: dict, n: int, reps: int, threads: int) -> dict:
    "Best-of-reps seconds to sample n images (10 classes, guidance 2) per model, interleaved so that load hits both alike."
    before = torch.get_num_threads(); torch.set_num_threads(threads)
    labels = torch.arange(n) % 10
    best = {k: float('inf') for k in models}
    try:
        for r in range(reps):
            for k, m in models.items():
                t = time.perf_counter(); m.sample(labels, cfg_scale=2.0, seed=r); best[k] = min(best[k], time.perf_counter() - t)
    finally: torch.set_num_threads(before)
    return dict(images=n, reps=reps, threads=threads, seconds=best, samples_per_second={k: n / v for k, v in best.items()},
                ratio=best['raster'] / best['next-scale'])


def step_time(models: dict, batch_size: int, steps: int, threads: int) -> dict:
    "Best seconds of one training step (forward, backward, AdamW) per model on the same real digits, interleaved, in one run."
    import copy
    from leech_explorer.data import load_images
    from leech_explorer.generator_train import encode_dataset, generator_loss, load_tokenizer
    before = torch.get_num_threads(); torch.set_num_threads(threads)
    images = torch.utils.data.Subset(load_images('mnist', 'train'), range(batch_size))
    nets = {k: copy.deepcopy(m).train() for k, m in models.items()}
    batches = {k: encode_dataset(load_tokenizer(m.config.tokenizer), images).tensors for k, m in models.items()}
    opts = {k: torch.optim.AdamW(n.parameters(), lr=1e-4) for k, n in nets.items()}
    best = {k: float('inf') for k in models}
    try:
        for _ in range(steps):
            for k, net in nets.items():
                t = time.perf_counter()
                loss, _ = generator_loss(net, batches[k]); loss.backward(); opts[k].step(); opts[k].zero_grad(set_to_none=True)
                best[k] = min(best[k], time.perf_counter() - t)
    finally: torch.set_num_threads(before)
    return dict(batch_size=batch_size, steps=steps, threads=threads, seconds=best, ratio=best['next-scale'] / best['raster'])


def weights_digest(name_or_dir: str) -> str:
    "SHA-256 of a saved generator's weights (shipped name or folder)."
    import hashlib
    from leech_explorer.generator import PRETRAINED, pretrained_dir
    folder = pretrained_dir(name_or_dir) if name_or_dir in PRETRAINED else Path(name_or_dir)
    return hashlib.sha256((folder / 'model.safetensors').read_bytes()).hexdigest()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--raster', default='mnist-tiny'); p.add_argument('--next-scale', default='mnist-tiny-ns')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='sampling seeds')
    p.add_argument('--n-per-class', type=int, default=20)
    p.add_argument('--cfg-scale', type=float, default=2.0)
    p.add_argument('--speed-images', type=int, nargs='+', default=[1, 10, 100], help='batch sizes to time sampling at'); p.add_argument('--reps', type=int, default=3)
    p.add_argument('--speed-threads', type=int, default=1)
    p.add_argument('--out', type=Path, default=ROOT / 'results' / 'generator' / 'next_scale.json')
    p.add_argument('--reuse', type=Path, default=None, help="take quality rows from this earlier record for a model whose weights' "
                   "SHA-256 and settings are the same (speed and step times are always measured afresh)")
    p.add_argument('--only', choices=['raster', 'next-scale'], default=None, help='measure the quality of this model only (to --reuse later)')
    a = p.parse_args()
    from leech_explorer.bench import environment
    from leech_explorer.data import load_images
    from leech_explorer.generator import Generator
    from leech_explorer.generator_train import cached_digit_classifier, evaluate_generator, test_features
    models = {'raster': Generator.from_pretrained(a.raster), 'next-scale': Generator.from_pretrained(a.next_scale)}
    for k, m in models.items():
        if m.config.kind != k: raise SystemExit(f"--{k} {getattr(a, k.replace('-', '_'))} is a {m.config.kind!r} generator")
    t0 = time.perf_counter()
    sp = []
    for n in a.speed_images:
        sp.append(speed(models, n, a.reps, a.speed_threads))
        print(f"sampling {n} images, {a.speed_threads} thread(s): " + ', '.join(f"{k} {v:.3f} s" for k, v in sp[-1]['seconds'].items())
              + f"; next-scale {sp[-1]['ratio']:.2f}x faster", flush=True)
    st = step_time(models, 32, a.reps + 2, a.speed_threads)
    print(f"one training step of 32 digits: " + ', '.join(f"{k} {v:.3f} s" for k, v in st['seconds'].items())
          + f"; next-scale costs {st['ratio']:.2f}x raster's", flush=True)
    judge = cached_digit_classifier(load_images('mnist', 'train'))
    real = test_features('mnist', 10 * a.n_per_class)
    digests = {k: weights_digest(getattr(a, k.replace('-', '_'))) for k in models}
    settings = dict(n_per_class=a.n_per_class, cfg_scale=a.cfg_scale, seeds=a.seeds,
                    fid_reference='Inception features of 200 real MNIST test digits spread over the split')
    old = json.loads(a.reuse.read_text()) if a.reuse else None
    rows = []
    for seed in a.seeds:
        for k, m in models.items():
            if a.only and k != a.only: continue
            if old and old['settings'] == settings and old['models'][k]['sha256'] == digests[k]:
                rows += [r for r in old['rows'] if r['kind'] == k and r['seed'] == seed]; print(f"{k} seed {seed}: reused"); continue
            r = evaluate_generator(m, m.config.tokenizer, n_per_class=a.n_per_class, classifier=judge, real_features=real,
                                   cfg_scale=a.cfg_scale, seed=seed)
            rows.append(dict(kind=k, seed=seed, **{f: r[f] for f in ('classifier_score', 'gfid', 'precision', 'recall', 'samples_per_second',
                                                                      'invalid_raw_draws', 'n_samples', 'classifier_real_test_accuracy')}))
            print(f"{k:10s} seed {seed}: score {r['classifier_score']:.3f}, gFID {r['gfid']:.1f}, "
                  f"precision {r['precision']:.2f}, recall {r['recall']:.2f}", flush=True)
    info = {k: dict(sha256=digests[k], params=sum(p.numel() for p in m.parameters()), seq_len=m.config.seq_len, passes=len(getattr(m.config, 'scales', ())) or m.config.seq_len,
                    **{f: m.metrics.get(f) for f in ('steps', 'train_seconds', 'train_cpu_seconds', 'threads', 'optimizer', 'preset')},
                    final_nll=m.metrics['history'][-1].get('nll') if m.metrics.get('history') else None)
            for k, m in models.items()}
    out = dict(environment=environment(), args={k: v for k, v in vars(a).items() if k != 'out'},
               settings=settings,
               models=info, speed=sp, train_step=st, rows=rows, seconds=round(time.perf_counter() - t0, 1))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix('.tmp'); tmp.write_text(json.dumps(out, indent=1, default=str)); tmp.replace(a.out)
    print(f"wrote {a.out}")


if __name__ == '__main__':
    main()
