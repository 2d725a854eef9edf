"""Solutions to the exercises of 04_model.ipynb: the pieces of a transformer, in torch.

Run from anywhere: python notebooks/solutions/04_model.py
Each function gets the shipped model's real numbers for "Mia went to the" and is checked
against the model's own hooks (to within 1e-4).
"""

import math

import torch
import torch.nn.functional as F

from llmcore import teach


# 04.1 exp makes every score positive (and -inf becomes 0); dividing by the row's sum makes it add up to 1.
def softmax(x):
    e = torch.exp(x - x.max(dim=-1, keepdim=True).values)  # subtracting the max changes nothing but avoids overflow
    return e / e.sum(dim=-1, keepdim=True)


print(teach.check("04.1", softmax))


# 04.2 Every query meets every key; the future is masked; each row of weights mixes the values.
def attention_head(q, k, v):
    T, d_head = q.shape
    scores = q @ k.T / math.sqrt(d_head)  # [query_pos, key_pos]
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    pattern = scores.softmax(dim=-1)  # each row adds up to 1
    return pattern @ v  # [pos, d_head]


print(teach.check("04.2", attention_head))


# 04.3 Widen, bend, narrow: d_model -> d_mlp -> d_model, each token on its own.
def mlp(x, W_in, b_in, W_out, b_out):
    h = F.gelu(x @ W_in + b_in, approximate="tanh")  # [pos, d_mlp]
    return h @ W_out + b_out  # [pos, d_model]


print(teach.check("04.3", mlp))


# 04.4 LayerNorm (divide by n, not n - 1), then one score per vocabulary token.
def logits(resid, w, b, W_U):
    mean = resid.mean(dim=-1, keepdim=True)
    var = resid.var(dim=-1, keepdim=True, unbiased=False)
    x = (resid - mean) / torch.sqrt(var + 1e-5) * w + b
    return x @ W_U  # [pos, d_vocab]


print(teach.check("04.4", logits))


# 04.5 Each piece reads the (normalised) stream and adds its result back onto it.
def block(resid, ln1, attn, ln2, mlp):
    resid = resid + attn(ln1(resid))
    return resid + mlp(ln2(resid))


print(teach.check("04.5", block))
