"""The training loops of the reference codebases in PyTorch, as each writes its step: the replicas that
``tests/test_recipe_steps.py`` compares jsphere's step with in float64, and that ``benchmarks.real_faces`` trains
whole runs with.

* OpenSphere v1 (``runner.py``, ``Runner.train`` + ``update_model``, branch OpenSphere_v0): an SGD and a
  MultiStepLR per module, ``clip_grad_norm_`` per module, the head's ``w`` [D, C] normalised in place before
  each forward (``converters.torch_reference.heads``);
* OpenSphere v2 (``opensphere/proxy_based_trainer.py``, ``train_step``): one SGD with a backbone and a head
  group, ``clip_grad_norm_`` of both together, MultiStepLR, the head's ``w`` [C, D] normalised in place;
* arcface_torch (``recognition/arcface_torch/train_v2.py``, the fp32 path): ``PartialFC_V2`` (sample rate 1, one
  process) scoring with ``CombinedMarginLoss`` into ``DistCrossEntropy``, one SGD over backbone + centres,
  ``clip_grad_norm_(backbone.parameters(), 5)``, ``PolynomialLRWarmup`` stepped after every update.

Each loop is a generator over ``(images NCHW, labels)`` batches yielding ``(loss, lr used by the update)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class PolynomialLRWarmup(torch.optim.lr_scheduler.LRScheduler):
    """arcface_torch ``lr_scheduler.py``: torch's chained form, the first value is the optimizer's own lr."""

    def __init__(self, optimizer, warmup_iters: int, total_iters: int, power: float = 1.0):
        self.warmup_iters, self.total_iters, self.power = warmup_iters, total_iters, power
        super().__init__(optimizer)

    def get_lr(self):
        e, w, t = self.last_epoch, self.warmup_iters, self.total_iters
        if e == 0 or e > t:
            return [group["lr"] for group in self.optimizer.param_groups]
        if e <= w:
            return [base * e / w for base in self.base_lrs]
        factor = ((1.0 - (e - w) / (t - w)) / (1.0 - (e - 1 - w) / (t - w))) ** self.power
        return [group["lr"] * factor for group in self.optimizer.param_groups]


class DistCrossEntropy(torch.autograd.Function):
    """``partial_fc_v2.DistCrossEntropyFunc`` on one process: softmax, clamped log of the target, hand-written
    backward ``(softmax - onehot) / batch``."""

    @staticmethod
    def forward(ctx, logits, label):
        probs = (logits - logits.max(dim=1, keepdim=True)[0]).exp()
        probs = probs / probs.sum(dim=1, keepdim=True)
        ctx.save_for_backward(probs, label)
        return probs.gather(1, label).clamp_min(1e-30).log().mean() * (-1)

    @staticmethod
    def backward(ctx, loss_gradient):
        probs, label = ctx.saved_tensors
        grad = probs.clone()
        grad[torch.arange(len(label)), label.view(-1)] -= 1
        return grad / probs.shape[0] * loss_gradient.item(), None


class CombinedMarginLoss(nn.Module):
    """``losses.CombinedMarginLoss`` (every row is positive on one process), in place under no_grad as written."""

    def __init__(self, s, m1, m2, m3, interclass_filtering_threshold=0.0):
        super().__init__()
        self.s, self.m1, self.m2, self.m3 = s, m1, m2, m3
        self.threshold = interclass_filtering_threshold

    def forward(self, logits, labels):
        rows, cols = torch.arange(len(labels)), labels.view(-1)
        if self.threshold > 0:
            with torch.no_grad():
                dirty = (logits > self.threshold).to(logits.dtype)
                mask = torch.ones_like(logits).scatter_(1, labels, 0)
                tensor_mul = 1 - dirty * mask
            logits = tensor_mul * logits
        target_logit = logits[rows, cols]
        if self.m1 == 1.0 and self.m3 == 0.0:
            with torch.no_grad():
                target_logit.arccos_()
                logits.arccos_()
                logits[rows, cols] = target_logit + self.m2
                logits.cos_()
            return logits * self.s
        logits[rows, cols] = target_logit - self.m3
        return logits * self.s


class PartialFC(nn.Module):
    """``PartialFC_V2`` with sample rate 1 on one process: raw weight, normalised only inside the forward."""

    def __init__(self, margin_loss, weight: np.ndarray):
        super().__init__()
        self.margin_softmax = margin_loss
        self.weight = nn.Parameter(torch.from_numpy(weight.copy()))

    def forward(self, embeddings, labels):
        labels = labels.view(-1, 1)
        logits = F.linear(F.normalize(embeddings), F.normalize(self.weight)).clamp(-1, 1)
        return DistCrossEntropy.apply(self.margin_softmax(logits, labels), labels)


def arcface_torch_loop(backbone, head, batches, *, lr, weight_decay, warmup, total):
    opt = torch.optim.SGD([{"params": backbone.parameters()}, {"params": head.parameters()}], lr=lr, momentum=0.9,
                          weight_decay=weight_decay)
    scheduler = PolynomialLRWarmup(opt, warmup, total)
    for img, labels in batches:
        used_lr = opt.param_groups[0]["lr"]
        loss = head(backbone(img), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(backbone.parameters(), 5)
        opt.step()
        opt.zero_grad()
        scheduler.step()
        yield float(loss.detach()), used_lr


def opensphere_v2_loop(backbone, head, batches, *, lr, weight_decay, milestones, clip):
    groups = [{"params": backbone.parameters(), "lr": lr, "weight_decay": weight_decay},
              {"params": head.parameters(), "lr": lr, "weight_decay": weight_decay}]
    opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, list(milestones), 0.1)
    for img, labels in batches:
        used_lr = opt.param_groups[0]["lr"]
        opt.zero_grad()
        loss = head(backbone(img), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(backbone.parameters()) + list(head.parameters()), clip)
        opt.step()
        scheduler.step()
        yield float(loss.detach()), used_lr


def opensphere_v1_loop(backbone, head, batches, *, lr, weight_decay, milestones, clip):
    modules = [backbone, head]
    opts = [torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay) for m in modules]
    schedulers = [torch.optim.lr_scheduler.MultiStepLR(o, list(milestones), 0.1) for o in opts]
    for img, labels in batches:
        used_lr = opts[0].param_groups[0]["lr"]
        for opt in opts:
            opt.zero_grad()
        loss = head(backbone(img), labels)
        loss.backward()
        for module in modules:
            torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm=clip)
        for opt, scheduler in zip(opts, schedulers, strict=True):
            opt.step()
            scheduler.step()
        yield float(loss.detach()), used_lr
