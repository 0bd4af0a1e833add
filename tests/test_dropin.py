"""The course's quantizers as drop-ins for vector-quantize-pytorch users: its call patterns, with each of our three.

The model follows the shape of vector-quantize-pytorch's `examples/autoencoder_lfq.py` (a conv autoencoder on 28 x 28
images, the quantizer on the encoder's 7 x 7 feature map); random images stand in for Fashion-MNIST (no downloads).
vector-quantize-pytorch itself is a dev dependency: where it is installed, its `LFQ` and `VectorQuantize` run the same
calls and the shapes and conventions are compared with theirs.
"""
import os, subprocess, sys, textwrap
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from leech_explorer.interface import MASKED_INDEX, LossBreakdown
from leech_explorer.baselines import BSQuantizer, VectorQuantizer
from leech_explorer.quantizer import LeechQuantizer

try: import vector_quantize_pytorch as vqp
except ImportError: vqp = None
needs_vqp = pytest.mark.skipif(vqp is None, reason='vector-quantize-pytorch (a dev dependency) is not installed')

DIM = 16                                 # the encoder's width: different from every codebook's width below

# each maker takes vector-quantize-pytorch's keywords, as a user switching from it would write them
OURS = {
    'leech': lambda: LeechQuantizer(dim=DIM),                                     # codes of width 24
    'bsq': lambda: BSQuantizer(dim=DIM, codebook_size=2 ** 8),                   # like LFQ(dim=16, codebook_size=2**8)
    'vq': lambda: VectorQuantizer(dim=DIM, codebook_size=64, codebook_dim=8, accept_image_fmap=True),
}
CODE_WIDTH = {'leech': 24, 'bsq': 8, 'vq': 8}
THEIRS = {                                                                       # their counterparts, same keywords
    'bsq': lambda: vqp.LFQ(dim=DIM, codebook_size=2 ** 8, spherical=True),
    'vq': lambda: vqp.VectorQuantize(dim=DIM, codebook_size=64, codebook_dim=8, accept_image_fmap=True),
}

class AutoEncoder(nn.Module):
    "Conv encoder -> quantizer on a (B, DIM, 7, 7) map -> conv decoder, as in vector-quantize-pytorch's LFQ example."
    def __init__(self, quantizer):
        super().__init__()
        self.encode = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.MaxPool2d(2), nn.GELU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.MaxPool2d(2), nn.GroupNorm(4, 32, affine=False),
            nn.Conv2d(32, DIM, 1))
        self.quantize = quantizer
        self.decode = nn.Sequential(
            nn.Conv2d(DIM, 32, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 3, padding=1), nn.GELU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(16, 1, 3, padding=1))

    def forward(self, x):
        x = self.encode(x)
        x, indices, aux_loss = self.quantize(x)               # the library's call pattern: a 4-D map, a triple back
        return self.decode(x).clamp(-1, 1), indices, aux_loss

def train_step(model, images):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    out, indices, aux_loss = model(images)
    loss = F.l1_loss(out, images) + aux_loss
    opt.zero_grad(); loss.backward(); opt.step()
    return out, indices, loss

@pytest.mark.parametrize('name', list(OURS))
def test_autoencoder_step(name):
    torch.manual_seed(0)
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    q = OURS[name]()
    assert q.dim == DIM and q.codebook_dim == CODE_WIDTH[name] and q.has_projections
    model = AutoEncoder(q)
    first = model.encode[0].weight.detach().clone()
    out, indices, loss = train_step(model, images)
    assert out.shape == images.shape and indices.shape == (4, 7, 7) and indices.dtype == torch.long
    assert torch.isfinite(loss)
    assert not torch.equal(model.encode[0].weight, first)            # the gradient went through the quantizer
    assert all(p.grad is not None for p in q.project_in.parameters())
    assert q.usage.stats()['total'] == 4 * 7 * 7                      # training mode counts every token
    codes = q.indices_to_codes(indices)                               # LFQ's layout: (B, H, W) -> (B, DIM, H, W)
    assert codes.shape == (4, DIM, 7, 7)
    assert q.get_codes_from_indices(indices).shape == (4, CODE_WIDTH[name], 7, 7)
    with pytest.raises(AttributeError): q.codebook_size = 5          # read-only, as in the library

@needs_vqp
@pytest.mark.parametrize('name', list(THEIRS))
def test_same_shapes_as_the_library(name):
    torch.manual_seed(0)
    images = torch.rand(2, 1, 28, 28) * 2 - 1
    results = {}
    for who, make in (('ours', OURS[name]), ('theirs', THEIRS[name])):
        q = make()
        out, indices, loss = train_step(AutoEncoder(q), images)
        results[who] = (out.shape, indices.shape, q.codebook_size, q.get_codes_from_indices(indices).shape
                        if hasattr(q, 'get_codes_from_indices') else None,
                        q.indices_to_codes(indices).shape if hasattr(q, 'indices_to_codes') else None)
    ours, theirs = results['ours'], results['theirs']
    assert ours[:3] == theirs[:3]
    if name == 'bsq': assert ours[4] == theirs[4]                       # LFQ.indices_to_codes: projected, channel-first
    if name == 'vq': assert ours[3] == theirs[3]                        # VectorQuantize.get_codes_from_indices

def padded_batch(width, lengths=(6, 3, 1), n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(n) < torch.tensor(lengths)[:, None]                # (B, N): True = a real token
    return torch.randn(len(lengths), n, width, generator=g) * mask[..., None], mask

@pytest.mark.parametrize('name', list(OURS))
def test_masked_zero_padded_sequences(name):
    torch.manual_seed(0)
    q = VectorQuantizer(dim=DIM, codebook_size=64, codebook_dim=8) if name == 'vq' else OURS[name]()   # (no image flag)
    x, mask = padded_batch(DIM)
    x.requires_grad_()
    (quantized, indices, aux_loss), parts = q(x, mask=mask, return_loss_breakdown=True)
    assert isinstance(parts, LossBreakdown)
    assert quantized.shape == x.shape and indices.shape == mask.shape
    assert (indices[~mask] == MASKED_INDEX).all() and (indices[mask] >= 0).all()
    assert torch.equal(quantized.detach()[~mask], x.detach()[~mask])        # padding passes through (zeros here)
    assert q.usage.stats()['total'] == int(mask.sum())                      # padding is never counted
    (quantized.square().sum() + aux_loss).backward()
    assert torch.isfinite(x.grad).all()
    q.eval()
    assert torch.equal(q(x.detach(), mask=mask).indices[mask], q(x.detach()[mask]).indices)   # as if unpadded
    assert q.usage.stats()['total'] == int(mask.sum())                      # eval mode counts nothing
    codes = q.indices_to_codes(indices)
    assert codes.shape == x.shape and (codes[~mask] == 0).all()              # index -1 decodes to a zero vector

@needs_vqp
def test_masked_index_matches_vector_quantize():
    x, mask = padded_batch(DIM)
    theirs = vqp.VectorQuantize(dim=DIM, codebook_size=64)
    ours = VectorQuantizer(dim=DIM, codebook_size=64)
    (q1, i1, _), (q2, i2, _) = theirs(x, mask=mask), ours(x, mask=mask)
    assert q1.shape == q2.shape and i1.shape == i2.shape
    assert torch.equal(i1 == -1, i2 == MASKED_INDEX)                          # same padding index
    assert torch.equal(q1.detach()[~mask], q2.detach()[~mask])               # zero padding comes back as zeros in both

def test_video_and_channel_overrides():
    q = BSQuantizer(dim=DIM, codebook_size=2 ** 8)
    video = torch.randn(2, DIM, 3, 4, 5)                                     # (B, D, T, H, W)
    o = q(video)
    assert o.quantized.shape == video.shape and o.indices.shape == (2, 3, 4, 5)
    last = BSQuantizer(dim=DIM, codebook_size=2 ** 8, channel_first=False)
    last.load_state_dict(q.state_dict())
    assert torch.equal(last(video.movedim(1, -1)).indices, o.indices)
    with pytest.raises(ValueError, match='channel_first=False'): q(video.movedim(1, -1))

COMPILE = textwrap.dedent('''
    import os, torch
    from leech_explorer.quantizer import LeechQuantizer
    torch.manual_seed(0)
    q = LeechQuantizer()
    z = torch.randn(2, 24, 3, 4, requires_grad=True)
    cq = torch.compile(q, fullgraph=True, backend=os.environ.get('LEECH_COMPILE_BACKEND', 'aot_eager'))
    out = cq(z)                                      # the very first call of the process is compiled
    out.quantized.square().sum().backward(); g = z.grad.clone(); z.grad = None
    ref = q(z)
    ref.quantized.square().sum().backward()
    assert torch.equal(out.indices, ref.indices)
    assert torch.allclose(g, z.grad, atol=1e-6), (g - z.grad).abs().max()
    assert torch.allclose(out.quantized, ref.quantized, atol=1e-6)
    try: cq(torch.zeros(1, 24, 2, 2)); raise SystemExit('no error for an all-zero vector')
    except ValueError as e: assert 'all-zero' in str(e)
    print('compiled ok')
''')

def test_compile_fullgraph_cold():
    "torch.compile(LeechQuantizer(), fullgraph=True) in a fresh process: no graph break, same indices and gradients."
    r = subprocess.run([sys.executable, '-c', COMPILE], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and 'compiled ok' in r.stdout, r.stderr[-3000:]
