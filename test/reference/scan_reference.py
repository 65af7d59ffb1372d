"""Reference values for test/scan.test.ts: SCAN's encoders, stacked cross attention (t2i and i2t; LSE and mean
aggregation) and VSE++ max-violation loss, written after the SCAN authors' PyTorch code (kuanghuei/SCAN,
model.py: EncoderImagePrecomp, EncoderText, func_attention, xattn_score_t2i/i2t, ContrastiveLoss), with
PyTorch's own nn.GRU (bidirectional, packed sequences), in float64.

Run:  python3 test/reference/scan_reference.py      (Debian: apt-get install python3-torch; torch 1.13 used)
Weights: the same formula of parameter name and flat index as the test ([in, out] layout on our side).
"""
import json
import os
import math

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

torch.set_default_dtype(torch.float64)
V, M, d, E, R = 9, 4, 6, 5, 3
IDS = torch.tensor([[1, 4, 5, 2], [1, 3, 2, 0], [1, 7, 8, 6]])
LENGTHS = [4, 3, 4]
FEATS = torch.tensor([[0.5 + 0.5 * math.sin(0.13 * i + 0.7 * n) for i in range(R * E)] for n in range(3)]).reshape(3, R, E)


def det(name, shape):
    k = sum(ord(c) for c in name) % 101
    n = math.prod(shape)
    return torch.tensor([0.3 * math.sin(0.61 * i + 0.17 * k) for i in range(n)]).reshape(shape)


def l2norm(X, dim, eps=1e-8):
    return X / (torch.pow(X, 2).sum(dim=dim, keepdim=True).sqrt() + eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    w12 = torch.sum(x1 * x2, dim)
    w1 = torch.norm(x1, 2, dim)
    w2 = torch.norm(x2, 2, dim)
    return (w12 / (w1 * w2).clamp(min=eps)).squeeze()


def func_attention(query, context, smooth):
    batch_size, queryL, sourceL = context.size(0), query.size(1), context.size(1)
    attn = torch.bmm(context, query.transpose(1, 2))
    attn = nn.LeakyReLU(0.1)(attn)
    attn = l2norm(attn, 2)
    attn = attn.transpose(1, 2).contiguous().view(batch_size * queryL, sourceL)
    attn = nn.Softmax(dim=1)(attn * smooth).view(batch_size, queryL, sourceL)
    return torch.bmm(context.transpose(1, 2), attn.transpose(1, 2)).transpose(1, 2)


def xattn(images, captions, cap_lens, direction, agg, lambda_softmax, lambda_lse):
    sims = []
    for i in range(captions.size(0)):
        cap_i = captions[i, :cap_lens[i], :].unsqueeze(0).repeat(images.size(0), 1, 1)
        if direction == "t2i":
            wei = func_attention(cap_i, images, lambda_softmax)
            row_sim = cosine_similarity(cap_i, wei, dim=2)
        else:
            wei = func_attention(images, cap_i, lambda_softmax)
            row_sim = cosine_similarity(images, wei, dim=2)
        if row_sim.dim() == 1:
            row_sim = row_sim.unsqueeze(1)
        if agg == "lse":
            row_sim = torch.log(row_sim.mul(lambda_lse).exp().sum(dim=1, keepdim=True)) / lambda_lse
        else:
            row_sim = row_sim.mean(dim=1, keepdim=True)
        sims.append(row_sim)
    return torch.cat(sims, 1)


def contrastive(scores, margin):
    diagonal = scores.diag().view(scores.size(0), 1)
    d1, d2 = diagonal.expand_as(scores), diagonal.t().expand_as(scores)
    cost_s = (margin + scores - d1).clamp(min=0)
    cost_im = (margin + scores - d2).clamp(min=0)
    I = torch.eye(scores.size(0)) > 0.5
    cost_s, cost_im = cost_s.masked_fill_(I, 0), cost_im.masked_fill_(I, 0)
    return cost_s.max(1)[0].sum() + cost_im.max(0)[0].sum()


fc = nn.Linear(E, d)
emb = nn.Embedding(V, M)
gru = nn.GRU(M, d, 1, batch_first=True, bidirectional=True)
with torch.no_grad():
    fc.weight.copy_(det("img/W", [E, d]).T)
    fc.bias.copy_(det("img/b", [d]))
    emb.weight.copy_(det("embedding", [V, M]))
    for sfx, dir_ in [("", "fw"), ("_reverse", "bw")]:
        getattr(gru, "weight_ih_l0" + sfx).copy_(det(f"gru_{dir_}/Wx", [M, 3 * d]).T)
        getattr(gru, "weight_hh_l0" + sfx).copy_(det(f"gru_{dir_}/Wh", [d, 3 * d]).T)
        getattr(gru, "bias_ih_l0" + sfx).copy_(det(f"gru_{dir_}/bx", [3 * d]))
        getattr(gru, "bias_hh_l0" + sfx).copy_(det(f"gru_{dir_}/bh", [3 * d]))

img = l2norm(fc(FEATS), -1)
packed = pack_padded_sequence(emb(IDS), LENGTHS, batch_first=True, enforce_sorted=False)
out, _ = gru(packed)
cap, _ = pad_packed_sequence(out, batch_first=True)
cap = l2norm((cap[:, :, :d] + cap[:, :, d:]) / 2, -1)
result = {"torch": torch.__version__, "img": img.flatten().tolist(), "cap": cap.flatten().tolist()}
for direction in ["t2i", "i2t"]:
    for agg in ["lse", "mean"]:
        s = xattn(img, cap, LENGTHS, direction, agg, 9.0 if direction == "t2i" else 4.0, 6.0)
        result[f"{direction}_{agg}"] = s.flatten().tolist()
        result[f"{direction}_{agg}_loss"] = contrastive(s, 0.2).item()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scan_reference.json")
with open(out, "w") as f:
    json.dump(result, f, indent=1)
print(f"wrote {out}")
