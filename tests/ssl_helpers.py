"""Tiny transformers speech models written with save_pretrained into test dirs (nothing is downloaded)."""
import os

import torch

#: Conv stack with total stride 320 (the public models' 20 ms) but few channels.
TINY_CONV = dict(conv_dim=(16, 16, 16, 16), conv_stride=(5, 4, 4, 4), conv_kernel=(10, 8, 4, 4))


def make_tiny_ssl(root: str, kind: str = "wavlm", norm: str = "layer", seed: int = 0) -> str:
    """A 2-layer, hidden-32 speech SSL model (``wavlm`` / ``hubert`` / ``wav2vec2``) saved under ``root/kind``."""
    import transformers

    classes = {"wavlm": ("WavLMConfig", "WavLMModel"), "hubert": ("HubertConfig", "HubertModel"),
               "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model")}
    config_cls, model_cls = (getattr(transformers, n) for n in classes[kind])
    torch.manual_seed(seed)
    cfg = config_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, feat_extract_norm=norm,
                     do_stable_layer_norm=False, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                     feat_proj_dropout=0.0, layerdrop=0.0, **TINY_CONV)
    model = model_cls(cfg)
    out = os.path.join(root, kind)
    model.save_pretrained(out)
    return out


def ssl_encoder_config(model_dir: str, **extra) -> dict:
    """Settings of a tiny ``ssl_mhfa`` encoder on ``model_dir``."""
    return {"model_dir": model_dir, "heads": 4, "compress_dim": 8, "embed_dim": 16, "ecapa_channels": 16, **extra}
