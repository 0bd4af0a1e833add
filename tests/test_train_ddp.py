"""DDP through torchrun: 2 CPU processes on gloo must train exactly like 1 process with the same global batch."""
import os, subprocess, sys, textwrap
import pytest
import torch
from safetensors.torch import load_file

SCRIPT = textwrap.dedent('''
    import sys, torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from leech_explorer.train import TrainConfig, train
    torch.set_num_threads(1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__(); self.f = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))
        def forward(self, x, y):
            out = self.f(x).squeeze(-1)
            return out, ((out - y) ** 2).mean()

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g); data = TensorDataset(x, x.sum(1).sin())
    torch.manual_seed(0); net = Net()
    cfg = TrainConfig(steps=12, batch_size=16, lr=1e-2, warmup=2, ckpt_every=6, log_every=3)
    train(net, data, cfg, out=sys.argv[1], progress=False)
''')

def run(args, env_extra, tmp_path):
    env = os.environ | env_extra | {'OMP_NUM_THREADS': '1', 'PYTHONPATH': os.getcwd() + os.pathsep + os.environ.get('PYTHONPATH', '')}
    r = subprocess.run(args, cwd=os.getcwd(), env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason='no gloo backend')
def test_two_gloo_processes_match_one(tmp_path):
    script = tmp_path / 'ddp_train.py'; script.write_text(SCRIPT)
    run([sys.executable, str(script), str(tmp_path / 'one')], {}, tmp_path)
    run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(script), str(tmp_path / 'two')],
        {}, tmp_path)
    one, two = load_file(tmp_path / 'one' / 'last.safetensors'), load_file(tmp_path / 'two' / 'last.safetensors')
    model_keys = [k for k in one if k.startswith('model.')]
    assert model_keys and set(model_keys) == {k for k in two if k.startswith('model.')}
    for k in model_keys:   # the same update up to float summation order
        torch.testing.assert_close(one[k], two[k], rtol=1e-5, atol=1e-6)
    assert not any(p.name.endswith('.tmp') for p in (tmp_path / 'two').iterdir())   # only rank 0 wrote, and completed


SEED_SCRIPT = textwrap.dedent('''
    import os, sys, torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from leech_explorer.train import TrainConfig, train
    torch.set_num_threads(1)
    class Net(nn.Module):
        def __init__(self):
            super().__init__(); self.f = nn.Linear(4, 1)     # no randomness of its own: the draws below are the only ones
        def forward(self, x):
            out = self.f(x).squeeze(-1)
            return out, (out ** 2).mean()
    data = TensorDataset(torch.randn(32, 4, generator=torch.Generator().manual_seed(0)))
    torch.manual_seed(0); net = Net()
    draws = []
    train(net, data, TrainConfig(steps=3, batch_size=8, warmup=1), progress=False,
          callback=lambda step, logs: draws.append(torch.rand(4).tolist()))     # what a dropout mask would draw
    rank = int(os.environ.get('RANK', 0))
    open(os.path.join(sys.argv[1], f'rank{rank}.txt'), 'w').write(repr(draws))
''')

@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason='no gloo backend')
def test_ranks_draw_different_random_numbers(tmp_path):
    "Each DDP process is seeded with seed + rank: dropout and class dropout differ between processes (not copies)."
    script = tmp_path / 'ddp_seed.py'; script.write_text(SEED_SCRIPT)
    run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(script), str(tmp_path)], {}, tmp_path)
    one = tmp_path / 'single'; one.mkdir()
    run([sys.executable, str(script), str(one)], {}, tmp_path)
    r0, r1 = (tmp_path / 'rank0.txt').read_text(), (tmp_path / 'rank1.txt').read_text()
    assert r0 != r1                                            # different streams on the two processes
    assert r0 == (one / 'rank0.txt').read_text()              # rank 0 draws what a one-process run draws
