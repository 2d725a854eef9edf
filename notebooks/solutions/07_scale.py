"""Solutions to the exercises of 07_scale.ipynb.

Run from anywhere: python notebooks/solutions/07_scale.py
"""

from llmcore import scale, sizes, teach

# 07.1 With the same steps every size sees the same tokens; more parameters learn more from them.
rows = sizes.compare()
for r in rows:
    print(f"{r['name']:<11} {r['n_params']:>9,} parameters   held-out loss {r['final_val_loss']:.3f}")
answer = min(rows, key=lambda r: r["final_val_loss"])["name"]
print(teach.check("07.1", answer))

# 07.2 The same compute for each: a step costs 6 x parameters x tokens, so the smallest takes the most steps.
budget = rows[0]["steps"] * rows[0]["flops_per_step"]
for r in rows:
    print(f"{r['name']:<11} {budget / r['flops_per_step']:>4.0f} steps, held-out loss {sizes.val_loss_at_flops(r, budget):.3f}")
answer = sizes.winner(rows, flops=budget)
print(teach.check("07.2", answer))

# 07.3 The same GPU-hours over twice the GPUs: half the days.
answer = scale.wall_clock_days(1_720_320, 12_000)
print(f"{answer:.2f} days")
print(teach.check("07.3", answer))

# 07.4 Each token reads every weight once: 3.35e12 bytes/s / (68.98e9 x 2 bytes) ~ 24 tokens/s,
# 1.7 times the A100's bound, as the bandwidths are (3.35 / 2.0).
n = scale.get_preset("llama-2-70b").param_count()
answer = scale.get_accelerator("h100-sxm").mem_bandwidth / (2 * n)
print(f"{answer:.1f} tokens/s")
print(teach.check("07.4", answer))


# 07.5 6 FLOPs per parameter per token; an A100 does 312e12 x 0.43 useful FLOPs a second.
def gpu_hours(n_params, tokens):
    return 6 * n_params * tokens / (312e12 * 0.43 * 3600)


print(f"GPT-3: {gpu_hours(175e9, 300e9):,.0f} A100-hours")
print(teach.check("07.5", gpu_hours))
