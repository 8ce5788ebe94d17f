"""Independent PyTorch implementations of the heads, written from the papers' formulas and reference repos.

Each takes (x [B, D], w_unit [C', D] as a leaf tensor, y [B]) and returns the loss; gradients are taken by
torch autograd w.r.t. x and the (already projected) centres.
"""

import math

import torch
import torch.nn.functional as F


def cos_matrix(x, w):
    return F.normalize(x, dim=1) @ w.t()


def combined_margin(x, w, y, s=64.0, m1=1.0, m2=0.5, m3=0.0):
    """arcface_torch: PartialFC_V2 normalises its weight inside the forward (gradient through the normalisation)
    and clamps the cosines to [-1, 1]; CombinedMarginLoss takes arccos/cos in place under no_grad;
    DistCrossEntropy's value takes log(max(p_y, 1e-30)) while its backward is the uncapped softmax - onehot."""
    cos = (F.normalize(x, dim=1) @ F.normalize(w, dim=1).t()).clamp(-1, 1)
    with torch.no_grad():
        theta = torch.acos(cos)
        psi = torch.cos(theta)
        rows = torch.arange(len(y))
        psi[rows, y] = torch.cos(m1 * theta[rows, y] + m2) - m3
        delta = psi - cos
    ce = F.cross_entropy(s * (cos + delta), y, reduction="none")
    return (ce + (ce.clamp_max(-math.log(1e-30)) - ce).detach()).mean()


def curricularface(x, w, y, t_prev=0.0, s=64.0, m=0.5, mom=0.01):
    cos = cos_matrix(x, w).clamp(-1, 1)
    rows = torch.arange(len(y))
    ct = cos[rows, y].view(-1, 1)
    sin = torch.sqrt((1 - ct**2).clamp_min(1e-12))
    ctm = ct * math.cos(m) - sin * math.sin(m)
    final = torch.where(ct > math.cos(math.pi - m), ctm, ct - math.sin(math.pi - m) * m)
    t = (ct.mean() * mom + (1 - mom) * t_prev).detach()
    hard = cos > ctm
    out = torch.where(hard, cos * (t + cos), cos)
    onehot = F.one_hot(y, cos.shape[1]).bool()
    out = torch.where(onehot, final.expand_as(out), out)
    return F.cross_entropy(s * out, y)


def magface(x, w, y, s=64.0, l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8, lambda_g=35.0):
    a = x.norm(dim=1, keepdim=True).clamp(l_a, u_a)
    mm = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m
    cos = cos_matrix(x, w).clamp(-1, 1)
    sin = torch.sqrt((1 - cos**2).clamp_min(1e-12))
    ctm = cos * torch.cos(mm) - sin * torch.sin(mm)
    ctm = torch.where(cos > torch.cos(math.pi - mm), ctm, cos - torch.sin(math.pi - mm) * mm)
    onehot = F.one_hot(y, cos.shape[1]).bool()
    logits = s * torch.where(onehot, ctm, cos)
    return F.cross_entropy(logits, y) + lambda_g * (a / u_a**2 + 1 / a).mean()


def adaface(x, w, y, s=64.0, m=0.4, h=0.333, t_alpha=0.01, eps=1e-3, mean0=20.0, std0=100.0):
    norms = x.norm(dim=1, keepdim=True).clamp(0.001, 100).detach()
    mean = norms.mean() * t_alpha + (1 - t_alpha) * mean0
    std = norms.std() * t_alpha + (1 - t_alpha) * std0
    scaler = ((norms - mean) / (std + eps) * h).clamp(-1, 1)
    cos = cos_matrix(x, w).clamp(-1 + eps, 1 - eps)
    onehot = F.one_hot(y, cos.shape[1]).to(cos.dtype)
    theta = torch.acos(cos)
    theta_m = (theta + onehot * (-m * scaler)).clamp(eps, math.pi - eps)
    out = torch.cos(theta_m) - onehot * (m + m * scaler)
    return F.cross_entropy(s * out, y)


def gbcosface(x, w, y, s=32.0, m=0.16, alpha=0.15, min_v=0.5, max_v=0.7):
    cos = cos_matrix(x, w).clamp(-1, 1)
    onehot = F.one_hot(y, cos.shape[1]).bool()
    p = cos[onehot]
    n = torch.logsumexp((s * cos).masked_fill(onehot, float("-inf")), dim=1) / s
    v = (p.detach() + n.detach()) / 2
    big_v = v.mean().clamp(min_v, max_v)
    v_hat = v + alpha * (big_v - v)
    lp = F.softplus(2 * s * (v_hat - p + m)).mean()
    ln = F.softplus(2 * s * (n - v_hat + m)).mean()
    return 0.5 * lp + 0.5 * ln


def svsoftmax(x, w, y, s=30.0, m=0.35, t=1.1):
    cos = cos_matrix(x, w).clamp(-1, 1)
    rows = torch.arange(len(y))
    phi = cos[rows, y] - m
    onehot = F.one_hot(y, cos.shape[1]).bool()
    hard = (cos > phi.view(-1, 1)) & ~onehot
    out = torch.where(hard, t * cos + t - 1, cos)
    out = torch.where(onehot, phi.view(-1, 1).expand_as(out), out)
    return F.cross_entropy(s * out, y)


def uniface(x, w, y, b, s=64.0, m=0.4, lam=1.0):
    cos = cos_matrix(x, w).clamp(-1, 1)
    onehot = F.one_hot(y, cos.shape[1]).bool()
    pos = F.softplus(-(s * (cos - m) - b))
    neg = lam * F.softplus(s * cos - b)
    return torch.where(onehot, pos, neg).sum(dim=1).mean()


def subcenter_arcface(x, w, y, k=3, s=64.0, m=0.5):
    cos = cos_matrix(x, w).view(len(x), -1, k).max(dim=2).values
    with torch.no_grad():
        theta = torch.acos(cos.clamp(-1 + 1e-5, 1 - 1e-5))
        theta[torch.arange(len(y)), y] += m
        delta = torch.cos(theta.clamp(1e-5, 3.14159)) - cos
    return F.cross_entropy(s * (cos + delta), y)


def a_softmax_true_gradient(x, w, y, lam):
    """Forward of the Caffe layer (m = 4) with autograd's true gradient."""
    norm = x.norm(dim=1, keepdim=True)
    inner = x @ w.t()
    c = inner / norm
    psi = torch.cos(4 * torch.acos(c.clamp(-1, 1)))
    k = torch.floor(4 * torch.acos(c.clamp(-1, 1)) / math.pi)
    psi = (-1) ** k * psi - 2 * k
    onehot = F.one_hot(y, w.shape[0]).bool()
    logits = torch.where(onehot, (lam * inner + norm * psi) / (1 + lam), inner)
    return F.cross_entropy(logits, y)


def elastic_plus(margins, cos_target, order="released"):
    """ElasticFace+ (fdbtrs/ElasticFace ``losses.py``, ``plus=True``): the draws sorted ascending, indexed by the
    samples' order of descending target cosine ('released', as the released code indexes them), or given to the
    samples in that order ('ranked': the k-th closest to its centre gets the k-th smallest margin)."""
    _, by_cos = torch.sort(cos_target.detach(), descending=True)
    sorted_m, _ = torch.sort(margins)
    if order == "released":
        return sorted_m[by_cos]
    out = torch.empty_like(margins)
    out[by_cos] = sorted_m
    return out


def _label_margins(cos, y, margins, plus):
    """[B, C]: each sample's margin (ElasticFace+'s re-ordered ones when ``plus``) on its label, zero elsewhere."""
    rows = torch.arange(len(y))
    if plus:
        margins = elastic_plus(margins, cos[rows, y], plus)
    m_hot = torch.zeros_like(cos)
    m_hot[rows, y] = margins
    return m_hot


def elastic_arcface(x, w, y, margins, s=64.0, plus=None):
    """ElasticFace-Arc as fdbtrs/ElasticFace computes it, with the per-sample ``margins`` [B] given (drawn by the
    caller): cos clamped to [-1, 1], arccos, the sample's margin added on its label, cos, times s; true gradient."""
    cos = cos_matrix(x, w).clamp(-1, 1)
    m_hot = _label_margins(cos, y, margins, plus)
    return F.cross_entropy(s * torch.cos(torch.acos(cos) + m_hot), y)


def elastic_cosface(x, w, y, margins, s=64.0, plus=None):
    """ElasticFace-Cos as fdbtrs/ElasticFace computes it: the sample's margin subtracted from its label's cosine."""
    cos = cos_matrix(x, w).clamp(-1, 1)
    m_hot = _label_margins(cos, y, margins, plus)
    return F.cross_entropy(s * (cos - m_hot), y)


# jsphere head, its hyper-parameters, the reference function here and its keyword arguments
HEAD_CASES = [
    ("combined_margin", dict(s=64.0, m1=1.0, m2=0.5, m3=0.0), combined_margin, dict(m2=0.5)),
    ("combined_margin", dict(s=64.0, m1=1.0, m2=0.0, m3=0.4), combined_margin, dict(m2=0.0, m3=0.4)),
    ("curricularface", {}, curricularface, {}),
    ("magface", {}, magface, {}),
    ("adaface", {}, adaface, {}),
    ("gbcosface", {}, gbcosface, {}),
    ("svsoftmax", {}, svsoftmax, {}),
]
