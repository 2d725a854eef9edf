"""Solutions to the exercises of 07_scale.ipynb.

Run from anywhere: python notebooks/solutions/07_scale.py
"""

from llmcore import scale, teach

# 07.1 The work (GPU-hours) stays the same; twice the GPUs take half the days.
answer = 1_720_320 / 12_000 / 24
print(f"{answer:.1f} days")
print(teach.check("07.1", answer))

# 07.2 Each token reads every weight once, so time per token grows with the bytes of weights.
answer = scale.get_preset("llama-2-70b").param_count() / scale.get_preset("llama-2-7b").param_count()
print(f"{answer:.1f}x slower")
print(teach.check("07.2", answer))

# 07.3 6 N D FLOPs, divided by what one A100 really does per hour (312e12 FLOP/s x 0.43 x 3600 s).
answer = 6 * 175e9 * 300e9 / (312e12 * 0.43 * 3600)
print(f"{answer:,.0f} GPU-hours")
print(teach.check("07.3", answer))
