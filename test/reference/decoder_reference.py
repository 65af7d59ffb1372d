"""Reference values for test/decoder.test.ts, computed independently with PyTorch's own modules
(nn.Embedding, nn.Linear, nn.LSTMCell, nn.CrossEntropyLoss(ignore_index=0), optim.Adam) in float64.

Run:  python3 test/reference/decoder_reference.py      (Debian: apt-get install python3-torch; torch 1.13.1 used)
Weights are a fixed formula of each parameter's name and flat index in attend-tell's [in, out] layout
(`det` below), so both sides build identical models without exchanging files.
"""
import json
import os
import math

import torch

torch.set_default_dtype(torch.float64)
V, M, E, K, D, R = 7, 3, 6, 4, 5, 4  # vocab, embed, encoder, attention, decoder dims; regions
B, T = 2, 5
CAPTIONS = torch.tensor([[1, 4, 5, 6, 2], [1, 3, 2, 0, 0]])
LAMBDA = 1.0


def det(name, shape):
    k = sum(ord(c) for c in name) % 101
    n = math.prod(shape)
    return torch.tensor([0.3 * math.sin(0.61 * i + 0.17 * k) for i in range(n)]).reshape(shape)


def linear(name_w, name_b, fan_in, fan_out):
    lin = torch.nn.Linear(fan_in, fan_out)
    with torch.no_grad():
        lin.weight.copy_(det(name_w, [fan_in, fan_out]).T)  # ours [in, out], torch [out, in]
        lin.bias.copy_(det(name_b, [fan_out]))
    return lin


class Reference(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.W = linear("attention/W", "attention/bW", E, K)
        self.U = linear("attention/U", "attention/bU", D, K)
        self.A = linear("attention/A", "attention/bA", K, 1)
        self.embedding = torch.nn.Embedding(V, M)
        self.init_h = linear("decoder/initH", "decoder/bInitH", E, D)
        self.init_c = linear("decoder/initC", "decoder/bInitC", E, D)
        self.lstm = torch.nn.LSTMCell(M + E, D)
        self.f_beta = linear("decoder/fBeta", "decoder/bBeta", D, E)
        self.fcn = linear("decoder/fcn", "decoder/bFcn", D, V)
        with torch.no_grad():
            self.embedding.weight.copy_(det("decoder/embedding", [V, M]))
            self.lstm.weight_ih.copy_(det("decoder/Wx", [M + E, 4 * D]).T)
            self.lstm.weight_hh.copy_(det("decoder/Wh", [D, 4 * D]).T)
            self.lstm.bias_ih.copy_(det("decoder/bLstm", [4 * D]))
            self.lstm.bias_hh.zero_()
        self.lstm.bias_hh.requires_grad_(False)  # ours has one LSTM bias; keep the other at zero

    def forward(self, feats, caps):
        embeds = self.embedding(caps)
        mean = feats.mean(1)
        h, c = self.init_h(mean), self.init_c(mean)
        proj = self.W(feats)
        logits, alphas = [], []
        for t in range(caps.shape[1] - 1):
            e = self.A(torch.tanh(proj + self.U(h).unsqueeze(1))).squeeze(2)
            alpha = torch.softmax(e, dim=1)
            ctx = (alpha.unsqueeze(2) * feats).sum(1)
            gate = torch.sigmoid(self.f_beta(h))
            h, c = self.lstm(torch.cat([embeds[:, t], gate * ctx], dim=1), (h, c))
            logits.append(self.fcn(h))
            alphas.append(alpha)
        return torch.stack(logits, 1), torch.stack(alphas, 1)


def loss_of(model, feats):
    logits, alphas = model(feats, CAPTIONS)
    targets = CAPTIONS[:, 1:]
    ce = torch.nn.CrossEntropyLoss(ignore_index=0)(logits.reshape(-1, V), targets.reshape(-1))
    mask = (targets != 0).double().unsqueeze(2)
    penalty = ((1 - (alphas * mask).sum(1)) ** 2).sum(1).mean()
    return ce + LAMBDA * penalty, ce, penalty, logits, alphas


feats = torch.tensor([0.5 + 0.5 * math.sin(0.13 * i) for i in range(B * R * E)]).reshape(B, R, E)
model = Reference()
loss, ce, penalty, logits, alphas = loss_of(model, feats)
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
opt.zero_grad()
loss.backward()
opt.step()
loss_after = loss_of(model, feats)[0]
result = {
    "torch": torch.__version__,
    "logits": [round(x, 7) for x in logits.flatten().tolist()],
    "alphas_b0_t0": [round(x, 7) for x in alphas[0, 0].tolist()],
    "alphas_b1_t3": [round(x, 7) for x in alphas[1, 3].tolist()],
    "cross_entropy": round(ce.item(), 7),
    "attention_penalty": round(penalty.item(), 7),
    "loss": round(loss.item(), 7),
    "loss_after_one_adam_step": round(loss_after.item(), 7),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "decoder_reference.json")
with open(out, "w") as f:
    json.dump(result, f, indent=1)
print(f"wrote {out}")
