"""Small random transformers models to compare ours with."""

import torch


def random_hf_model(model_class: type, config) -> torch.nn.Module:
    """``model_class(config)`` in eval mode with every parameter drawn afresh (fused experts
    start as ``torch.empty``, some biases as zeros), and DeepSeek-V3's routing biases too
    (they start as zeros, which would hide a bug in how they are used); the same draw on
    every call."""
    torch.manual_seed(0)
    model = model_class(config).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.05)
    return model
