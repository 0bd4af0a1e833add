"Make images/leech_vs_bsq.png for the README (run: python tools/readme_figure.py). Every number is computed here."
import math
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
from leech_explorer.leech import leech_shell, inner_product_spectrum, SHELL_SIZE

S = leech_shell()
spec = inner_product_spectrum(S[0], S)                      # cosine -> count, the same for every shell vector
d = 18                                                      # BSQ-18: codes sign/sqrt(d); k flipped bits -> cos 1 - 2k/d
bsq = {1 - 2 * k / d: math.comb(d, k) for k in range(d + 1)}

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
ax = axes[0]
ax.bar([c - 0.012 for c in bsq], list(bsq.values()), width=0.022, color='tab:orange', label=f'BSQ-{d}: {2**d:,} codes on S^{d-1}')
ax.bar([c + 0.012 for c in spec], list(spec.values()), width=0.022, color='tab:purple', label=f'Λ24 shell: {SHELL_SIZE:,} codes on S^23')
ax.set_yscale('log'); ax.set_xlabel('cosine between a code and every other code'); ax.set_ylabel('codes (log)')
nn_b, nn_l = max(c for c in bsq if c < 1), max(c for c in spec if c < 1)
ax.set_title(f'nearest neighbours: BSQ at {math.degrees(math.acos(nn_b)):.1f}°, Λ24 at {math.degrees(math.acos(nn_l)):.0f}°')
ax.legend(fontsize=8, loc='upper left')
ax = axes[1]
costs = {'brute force\n(all 196,560 codes)': SHELL_SIZE * 24, 'structured search\n(shapes + Golay code)': 24 + 759 * 8 + 6 * 8 * 4 + 128 * 6 * 8}
ax.barh(list(costs), list(costs.values()), color=['tab:red', 'tab:green']); ax.set_xscale('log')
for i, v in enumerate(costs.values()): ax.text(v, i, f' {v:,}', va='center')
ax.set_xlabel('operations per input vector (log)'); ax.set_title('exact nearest-code search'); ax.set_xlim(1, 1e8)
plt.tight_layout(); plt.savefig('images/leech_vs_bsq.png', dpi=90)
print('wrote images/leech_vs_bsq.png')
