"""One prepared GPU check for the quantizer (run it on a CUDA machine; it needs only torch, numpy, einops and tqdm).

    PYTHONPATH=. python tools/device_check.py --out results/       # on the device machine: PYTHONPATH=. python ... --out $OUT

1. exactness of `nearest_shell_index` on CUDA (the torch structured search) against fp32 brute force on the same GPU
   (TF32 off), re-checked in float64 where they differ: 10^6 Gaussian inputs plus the adversarial batches of chapter 03;
2. agreement with the CPU search on a sample;
3. `benchmark` on CUDA: structured vs brute force at N = 65,536 and 1,048,576 (same run, ratios), peak extra memory;
4. the Triton kernel of chapter 03b (if triton imports): exactness on the same inputs, then vectors/s and peak memory
   at N = 1,048,576 for blocks 64 and 128 (first call compiles; timed calls come after a warm-up).
Prints a summary and writes device_check.json and bench-<device>.json (a recorded run, see chapter 03c) into --out.
"""
import argparse, json, math, os, sys, time
import torch
from leech_explorer.leech import leech_shell, SHELL_SIZE
from leech_explorer.quantizer import nearest_shell_index, unit_codebook
from leech_explorer.bench import benchmark, format_benchmark, save_run

def sync():
    "Wait for the GPU (no-op on CPU)."
    if torch.cuda.is_available(): torch.cuda.synchronize()

def gaps_on(z: torch.Tensor, idx: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    "Best minus chosen inner product for unit z, fp32 brute force on z's device, fp64 re-check where they differ."
    z = z.double(); z = z / z.norm(dim=-1, keepdim=True)
    c32, c64 = unit_codebook(str(z.device), torch.float32), unit_codebook(str(z.device), torch.float64)
    out = torch.zeros(len(z), dtype=torch.float64, device=z.device)
    for i in range(0, len(z), chunk):
        zi, ii = z[i:i + chunk], idx[i:i + chunk]
        s = zi.float() @ c32.T
        g = s.max(-1).values - s.gather(1, ii[:, None])[:, 0]
        sus = torch.nonzero(g > 1e-6)[:, 0]
        if len(sus):
            s64 = zi[sus] @ c64.T
            out[i + sus] = s64.max(-1).values - s64.gather(1, ii[sus, None])[:, 0]
    return out

def adversarial(n: int, g: torch.Generator, dev: str) -> dict:
    "Hard inputs: shell vectors, midpoints of 60-degree neighbours, one-hot, sparse, huge/tiny norms, low precision."
    S = leech_shell().float()
    u = S[torch.randint(0, SHELL_SIZE, (n,), generator=g)]
    nb = S[((S @ u.T) == 16).float().argmax(0)]
    rnd = torch.randn(n, 24, generator=g)
    sparse = torch.zeros(n, 24).scatter_(1, torch.randint(0, 24, (n, 3), generator=g), torch.randn(n, 3, generator=g))
    sparse = sparse[(sparse != 0).any(1)]
    batches = {'shell vectors': u, 'midpoints of neighbours': (u + nb) / 2, 'one-hot': torch.cat([torch.eye(24), -torch.eye(24)]),
               'sparse': sparse, 'huge 1e30': rnd * 1e30, 'tiny 1e-30': rnd * 1e-30, 'float16': rnd.half(), 'bfloat16': rnd.bfloat16()}
    return {k: v.to(dev) for k, v in batches.items()}

def triton_check(z: torch.Tensor, g: torch.Generator, dev: str) -> dict:
    "Exactness and speed of the Triton kernel (chapter 03b), or the reason it could not run."
    try:
        from leech_explorer.triton_search import nearest_shell_index_triton, triton_available
        if not triton_available(): return {'skipped': 'triton not available'}
        scale = lambda x: x / x.abs().amax(-1, keepdim=True)
        out = {}
        t0 = time.perf_counter(); idx = nearest_shell_index_triton(scale(z)); sync()
        out['first_call_s'] = time.perf_counter() - t0
        gap = gaps_on(z, idx)
        out['random'] = dict(n=len(z), wrong=int((gap > 1e-5).sum()), max_gap=float(gap.max()))
        out['adversarial_wrong'] = {k: int((gaps_on(v.float(), nearest_shell_index_triton(scale(v.float()))) > 1e-5).sum())
                                    for k, v in adversarial(2000, g, dev).items()}
        zs = scale(z)
        for block in ((64, 128) if dev == 'cuda' else ()):
            nearest_shell_index_triton(zs[:4096], block=block); sync()
            if dev == 'cuda': torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated() if dev == 'cuda' else 0
            t0 = time.perf_counter(); nearest_shell_index_triton(zs, block=block); sync()
            dt = time.perf_counter() - t0
            out[f'block{block}'] = dict(vectors_per_s=len(zs) / dt,
                                        peak_bytes_per_vector=(torch.cuda.max_memory_allocated() - base) / len(zs)
                                        if dev == 'cuda' else None)
        return out
    except Exception as e:                                   # report, don't lose the rest of the run
        return {'error': f'{type(e).__name__}: {e}'}

def stage(report: dict, name: str, fn) -> None:
    "Run one stage; keep its result or its error, and go on."
    t0 = time.perf_counter()
    try: report[name] = fn()
    except Exception as e: report[name] = {'error': f'{type(e).__name__}: {e}'}
    print(f'[{name}: {time.perf_counter() - t0:.1f} s]', flush=True)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='.', help='folder for device_check.json')
    p.add_argument('--n', type=int, default=1_000_000, help='random inputs for the exactness check')
    p.add_argument('--device', default='cuda', help="'cuda' (the point of this script) or 'cpu' for a quick smoke test")
    args = p.parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available(): sys.exit('no CUDA device: this check is for the GPU machine')
    torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False
    dev = args.device
    report = {'device': torch.cuda.get_device_name() if dev == 'cuda' else 'cpu', 'torch': torch.__version__}
    g = torch.Generator().manual_seed(0)
    z = torch.randn(args.n, 24, generator=g).to(dev)

    def random_check():
        t0 = time.perf_counter(); idx = nearest_shell_index(z); sync(); dt = time.perf_counter() - t0
        gap = gaps_on(z, idx)
        return dict(n=args.n, wrong=int((gap > 1e-5).sum()), max_gap=float(gap.max()), first_call_s=dt)
    def adversarial_check():
        return {name: int((gaps_on(zb.float(), nearest_shell_index(zb)) > 1e-5).sum())
                for name, zb in adversarial(2000, g, dev).items()}
    def cpu_agreement():
        return float((nearest_shell_index(z[:20000].cpu()) == nearest_shell_index(z[:20000], method='torch').cpu()).float().mean())
    stage(report, 'random', random_check)
    stage(report, 'adversarial_wrong', adversarial_check)
    stage(report, 'cpu_agreement', cpu_agreement)
    sizes = (65536, 1048576) if dev == 'cuda' else (min(args.n, 4096),)
    stage(report, 'benchmark', lambda: benchmark(sizes=sizes, devices=[dev], methods=('torch',), baseline_max=1024, progress=False))
    stage(report, 'triton', lambda: triton_check(z, g, dev))
    print(json.dumps({k: v for k, v in report.items() if k != 'benchmark'}, indent=1, default=str))
    if isinstance(report['benchmark'], list): print(format_benchmark(report['benchmark']))
    os.makedirs(args.out, exist_ok=True)
    if isinstance(report['benchmark'], list): save_run(report['benchmark'], f'{args.out}/bench-{dev}.json')   # for benchmarks/
    with open(f'{args.out}/device_check.json', 'w') as f: json.dump(report, f, indent=1, default=str)

if __name__ == '__main__': main()
