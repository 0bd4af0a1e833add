"""One prepared GPU check for the quantizer (run it on a CUDA machine; it needs only torch, numpy, einops and tqdm).

    PYTHONPATH=. python tools/device_check.py --out results/       # on the device machine: PYTHONPATH=. python ... --out $OUT

1. exactness of `nearest_shell_index` on CUDA (the torch structured search) against fp32 brute force on the same GPU
   (TF32 off), re-checked in float64 where they differ: 10^6 Gaussian inputs plus the adversarial batches of chapter 03;
2. agreement with the CPU search on a sample;
3. `benchmark` on CUDA: structured vs brute force at N = 65,536 and 1,048,576 (same run, ratios), peak extra memory.
Prints a summary and writes device_check.json into --out.
"""
import argparse, json, math, sys, time
import torch
from leech_explorer.leech import leech_shell, SHELL_SIZE
from leech_explorer.quantizer import nearest_shell_index, unit_codebook, benchmark, format_benchmark

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

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='.', help='folder for device_check.json')
    p.add_argument('--n', type=int, default=1_000_000, help='random inputs for the exactness check')
    args = p.parse_args()
    if not torch.cuda.is_available(): sys.exit('no CUDA device: this check is for the GPU machine')
    torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False
    dev, report = 'cuda', {'device': torch.cuda.get_device_name(), 'torch': torch.__version__}
    g = torch.Generator().manual_seed(0)
    z = torch.randn(args.n, 24, generator=g).to(dev)
    t0 = time.perf_counter(); idx = nearest_shell_index(z); torch.cuda.synchronize(); dt = time.perf_counter() - t0
    gap = gaps_on(z, idx)
    report['random'] = dict(n=args.n, wrong=int((gap > 1e-5).sum()), max_gap=float(gap.max()), first_call_s=dt)
    report['adversarial'] = {}
    for name, zb in adversarial(2000, g, dev).items():
        gb = gaps_on(zb.float(), nearest_shell_index(zb))
        report['adversarial'][name] = dict(n=len(zb), wrong=int((gb > 1e-5).sum()), max_gap=float(gb.max()))
    cpu = nearest_shell_index(z[:20000].cpu())
    report['cpu_agreement'] = float((cpu == idx[:20000].cpu()).float().mean())
    rows = benchmark(sizes=(65536, 1048576), devices=['cuda'], methods=('torch',), progress=False)
    report['benchmark'] = rows
    print(json.dumps({k: v for k, v in report.items() if k != 'benchmark'}, indent=1))
    print(format_benchmark(rows))
    with open(f'{args.out}/device_check.json', 'w') as f: json.dump(report, f, indent=1)

if __name__ == '__main__': main()
