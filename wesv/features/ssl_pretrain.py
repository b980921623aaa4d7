"""Pretrain a small wav2vec 2.0 on unlabelled audio with transformers' ``Wav2Vec2ForPreTraining`` (contrastive +
diversity loss), so a recipe without WavLM Base+ gets an honest SSL front-end to fine-tune.

The saved directory (``save_pretrained`` of the ``Wav2Vec2Model`` inside) loads exactly like a downloaded WavLM
Base+ (``encoder.model_dir``). Presets use layer-norm CNNs (padding-invariant) with a total stride of 320 (50 Hz).
"""
import json
import math
import os
import shutil
import time
from typing import Iterator

import numpy as np
import torch

from wesv.data.audio import crop, load_audio
from wesv.data.datadir import read_scp
from wesv.errors import WesvError

PRESETS: dict[str, dict] = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                 conv_dim=(64, 64, 64, 64), conv_stride=(5, 4, 4, 4), conv_kernel=(10, 8, 4, 4),
                 num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4, codevector_dim=64,
                 proj_codevector_dim=64, num_codevectors_per_group=64, num_codevector_groups=2),
    "small": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
                  conv_dim=(128,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                  num_conv_pos_embeddings=64, num_conv_pos_embedding_groups=8, codevector_dim=128,
                  proj_codevector_dim=128, num_codevectors_per_group=128, num_codevector_groups=2),
}
#: Shared by the presets: wav2vec 2.0's masking and loss weights, no dropout (small data, few steps).
COMMON = dict(feat_extract_norm="layer", do_stable_layer_norm=True, mask_time_prob=0.65, mask_time_length=10,
              num_negatives=50, diversity_loss_weight=0.1, hidden_dropout=0.0, attention_dropout=0.0,
              activation_dropout=0.0, feat_proj_dropout=0.0, feat_quantizer_dropout=0.0, layerdrop=0.0,
              apply_spec_augment=True, sampling_rate=16000)


def preset_config(name: str):
    """A ``Wav2Vec2Config`` for preset ``name`` (tiny: ~0.2 M parameters, small: ~1.3 M)."""
    from transformers import Wav2Vec2Config

    if name not in PRESETS:
        raise WesvError(f"--config-preset {name!r}: choose one of {', '.join(PRESETS)}")
    return Wav2Vec2Config(**PRESETS[name], **COMMON)


def random_crops(wav_scp: dict[str, str], batch_size: int, num_samples: int, seed: int,
                 sample_rate: int = 16000) -> Iterator[torch.Tensor]:
    """Endless batches ``(batch_size, num_samples)`` of random crops of random utterances (short ones repeated)."""
    rng = np.random.default_rng(seed)
    items = sorted(wav_scp.items())
    while True:
        picks = rng.integers(0, len(items), size=batch_size)
        waves = [crop(load_audio(items[i][1], sample_rate, utt=items[i][0]), num_samples, rng, "repeat",
                      utt=items[i][0]) for i in picks]
        yield torch.from_numpy(np.stack(waves))


def pretraining_step(model, wave: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
    """One masked contrastive step: mask spans, sample negatives, loss per masked frame (as transformers' script)."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

    cfg = model.config
    frames = int(model._get_feat_extract_output_lengths(wave.shape[1]))
    np.random.set_state(np.random.RandomState(int(rng.integers(2**31))).get_state())  # the helpers use np.random
    mask = _compute_mask_indices((wave.shape[0], frames), mask_prob=cfg.mask_time_prob,
                                 mask_length=cfg.mask_time_length, min_masks=2)
    negatives = _sample_negative_indices((wave.shape[0], frames), cfg.num_negatives, mask_time_indices=mask)
    out = model(wave, mask_time_indices=torch.from_numpy(mask).to(wave.device),
                sampled_negative_indices=torch.from_numpy(negatives).to(wave.device))
    num_masked = max(1, int(mask.sum()))
    loss = out.loss / num_masked
    logs = {"loss": loss.item(), "contrastive": out.contrastive_loss.item() / num_masked,
            "diversity": out.diversity_loss.item() / num_masked, "ppl": out.codevector_perplexity.item()}
    return loss, logs


def pretrain(data: str, out: str, preset: str = "tiny", steps: int = 200, batch_size: int = 8,
             crop_seconds: float = 2.0, lr: float = 5e-4, warmup: float = 0.1, seed: int = 0,
             device: str = "cpu", log_every: int = 10, force: bool = False, progress: bool = True) -> dict:
    """Pretrain into ``out`` (written whole at the end: temp dir, then rename); returns a summary with the losses."""
    from tqdm import tqdm
    from transformers import Wav2Vec2ForPreTraining

    scp = os.path.join(data, "wav.scp")
    if not os.path.isfile(scp):
        raise WesvError(f"{data}: no wav.scp; give a Kaldi data dir of (unlabelled) training audio")
    if os.path.exists(out) and os.listdir(out) and not force:
        raise WesvError(f"{out}: already exists and is not empty; remove it, choose another --out or pass --force")
    if steps < 1 or batch_size < 1 or crop_seconds <= 0:
        raise WesvError("--steps and --batch-size must be >= 1 and --crop-seconds > 0")
    wav_scp = read_scp(scp)
    if not wav_scp:
        raise WesvError(f"{scp}: empty")
    torch.manual_seed(seed)
    config = preset_config(preset)
    model = Wav2Vec2ForPreTraining(config).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98), eps=1e-6)
    warm = max(1, int(warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
    batches = random_crops(wav_scp, batch_size, int(round(crop_seconds * config.sampling_rate)), seed,
                           config.sampling_rate)
    rng = np.random.default_rng(seed)
    tmp = f"{out.rstrip('/')}.tmp.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    records, start = [], time.time()
    try:
        with open(os.path.join(tmp, "pretrain_log.jsonl"), "w") as logf:
            bar = tqdm(range(steps), desc=f"pretrain {preset}", disable=not progress, dynamic_ncols=True)
            for step in bar:
                # gumbel temperature 2 → 0.5 over the run (wav2vec 2.0's decay, compressed to the step budget)
                model.set_gumbel_temperature(max(0.5, 2.0 * math.pow(0.25, step / max(1, steps - 1))))
                loss, logs = pretraining_step(model, next(batches).to(device), rng)
                if not math.isfinite(logs["loss"]):
                    raise WesvError(f"non-finite pretraining loss at step {step + 1}; lower --lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                opt.step()
                sched.step()
                if (step + 1) % log_every == 0 or step == 0 or step + 1 == steps:
                    rec = {"step": step + 1, **{k: round(v, 5) for k, v in logs.items()},
                           "lr": sched.get_last_lr()[0], "seconds": round(time.time() - start, 2)}
                    records.append(rec)
                    logf.write(json.dumps(rec) + "\n")
                    logf.flush()
                    bar.set_postfix(loss=f"{logs['loss']:.3f}")
        model.wav2vec2.save_pretrained(tmp)  # the speech model alone: loads as the fine-tuning front-end
        summary = {"preset": preset, "steps": steps, "batch_size": batch_size, "crop_seconds": crop_seconds,
                   "seconds_per_step": round((time.time() - start) / steps, 4), "first_loss": records[0]["loss"],
                   "last_loss": records[-1]["loss"], "data": os.path.abspath(data)}
        with open(os.path.join(tmp, "pretrain_summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
