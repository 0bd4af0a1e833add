"""Training survives interruption: automatic checkpoints, a killed run that resumes, DDP processes that agree
on when to checkpoint, and DataLoader workers that do not change the run."""
import json, os, subprocess, sys, textwrap
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from leech_explorer.train import TrainConfig, train, checkpoint_metadata

ENV = os.environ | {'OMP_NUM_THREADS': '1', 'LEECH_EXPLORER_SYSTEM_DATA': '0',
                    'PYTHONPATH': os.getcwd() + os.pathsep + os.environ.get('PYTHONPATH', '')}
gloo = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason='no gloo backend')


KILLED = textwrap.dedent('''
    import sys, torch
    from leech_explorer.tokenizer import train_tokenizer
    torch.set_num_threads(1)
    train_tokenizer('tiny', 'leech', 'digits', steps=3000, out=sys.argv[1], progress=False)
''')

def test_killed_tokenizer_run_leaves_a_checkpoint_and_resumes(tmp_path, kill_when_file_appears):
    "A run like `train-tokenizer --dataset digits --steps 3000`, killed mid-way, must leave a checkpoint that resumes."
    script, out = tmp_path / 'run.py', tmp_path / 'run'
    script.write_text(KILLED)
    ckpt = out / 'last.safetensors'
    appeared, output, seconds = kill_when_file_appears([sys.executable, script, out], ckpt, timeout=300, poll=0.2, env=ENV)
    assert appeared, f'no checkpoint after {seconds:.0f} s: ' + output[-2000:]
    step = int(checkpoint_metadata(ckpt)['step'])                    # a complete, readable checkpoint, however it was killed
    assert 150 <= step < 3000 and step % 150 == 0, step               # every 5% of 3,000 steps (or the 5-minute rule)
    from leech_explorer.tokenizer import train_tokenizer, Tokenizer
    with pytest.raises(ValueError, match=f'steps 3000 -> {step + 2}'):   # a shorter run is another run: refused ...
        train_tokenizer('tiny', 'leech', 'digits', steps=step + 2, out=out, resume=True, progress=False)
    path = train_tokenizer('tiny', 'leech', 'digits', steps=step + 2, out=out, resume=True, progress=False,
                           allow_changes=('steps',))                 # ... unless asked for
    assert json.loads((path / 'metrics.json').read_text())['steps'] == step + 2
    Tokenizer.from_pretrained(path)


AGREE = textwrap.dedent('''
    import os, sys, torch
    from torch import nn
    from torch.utils.data import TensorDataset
    import leech_explorer.train as T
    torch.set_num_threads(1)
    rank = int(os.environ.get('RANK', 0))
    if rank == 0: T.AUTO_CKPT_SECONDS = 0.0        # rank 0's clock says "checkpoint now" after every step, rank 1's never
    saves, real_save = [], T.save_checkpoint
    def counting_save(path, model, optimizers, step, *args, **kwargs):
        saves.append(step); return real_save(path, model, optimizers, step, *args, **kwargs)
    T.save_checkpoint = counting_save
    data = TensorDataset(torch.randn(64, 4, generator=torch.Generator().manual_seed(0)))
    class Net(nn.Module):
        def __init__(self): super().__init__(); self.f = nn.Linear(4, 1)
        def forward(self, x): out = self.f(x).squeeze(-1); return out, (out ** 2).mean()
    torch.manual_seed(0)
    T.train(Net(), data, T.TrainConfig(steps=30, batch_size=8, warmup=1), out=sys.argv[1], progress=False)   # ckpt_every=None
    open(os.path.join(sys.argv[1], f'saves{rank}.txt'), 'w').write(repr(saves))
''')

@gloo
def test_ddp_processes_agree_on_time_based_checkpoints(tmp_path):
    "Every DDP process must take part in the same checkpoints; the wall-clock rule follows rank 0's clock on all of them."
    script = tmp_path / 'agree.py'; script.write_text(AGREE)
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(script), str(tmp_path)],
                       env=ENV, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert eval((tmp_path / 'saves0.txt').read_text()) == list(range(1, 31))   # rank 0 wrote after every step ...
    assert eval((tmp_path / 'saves1.txt').read_text()) == []                   # ... and rank 1 followed (it never writes)
    assert checkpoint_metadata(tmp_path / 'last.safetensors')['step'] == '30'


class Noisy(nn.Module):
    "Draws random numbers every step (dropout): a DataLoader worker that touched the global generator would show."
    def __init__(self):
        super().__init__(); self.f, self.drop = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1)), nn.Dropout(0.3)
    def forward(self, x, y):
        out = self.f(self.drop(x)).squeeze(-1)
        return out, ((out - y) ** 2).mean()

def _run(num_workers: int, out=None, stop: int | None = None, resume: bool = False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g); data = TensorDataset(x, x.sum(1).sin())
    torch.manual_seed(0); net = Noisy()
    def cb(step, logs):
        if step == stop: raise KeyboardInterrupt
    cfg = TrainConfig(steps=12, batch_size=8, warmup=2, log_every=1, ckpt_every=None, num_workers=num_workers)
    return train(net, data, cfg, out=out, resume=resume, callback=cb if stop else None, progress=False)

def test_num_workers_give_the_same_run(tmp_path):
    "num_workers > 0 loads the same batches in the same order and leaves the run's random numbers alone."
    a, b = _run(0), _run(2)
    assert [r['loss'] for r in a['history']] == [r['loss'] for r in b['history']]
    for k, v in a['model'].state_dict().items(): assert torch.equal(v, b['model'].state_dict()[k]), k
    with pytest.raises(KeyboardInterrupt): _run(2, out=tmp_path, stop=7)    # interrupted with workers, resumed without:
    c = _run(0, out=tmp_path, resume=True)                                   # num_workers may change on resume
    assert c['config_changes'] == [] and [r['loss'] for r in c['history']] == [r['loss'] for r in a['history']]
    for k, v in a['model'].state_dict().items(): assert torch.equal(v, c['model'].state_dict()[k]), k
