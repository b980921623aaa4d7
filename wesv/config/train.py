"""The training config: typed sections, loaded from YAML with ``--section.key value`` overrides, saved resolved."""
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

import yaml

from wesv.augment import AugmentConfig
from wesv.config.typed import Override, from_dict, key_lines, parse_overrides, set_dotted, to_dict
from wesv.errors import WesvError, where


@dataclass
class DataConfig:
    """Training data and loader settings."""

    train: str = "data/train"  # a Kaldi data dir (wav.scp; utt2spk for methods that use labels)
    # A make_shards output dir (shards.list, shards.json): the audio is streamed from it instead of data.train's
    # wav.scp; labels still come from data.train/utt2spk when that exists, else from the shards.
    shards: Optional[str] = None
    shard_buffer: int = 256  # shuffle buffer of the shard stream, in samples per DataLoader worker
    crop_seconds: float = 2.0
    sample_rate: int = 16000
    resample: bool = False  # resample files at another rate instead of failing
    short: Literal["repeat", "pad", "error"] = "repeat"  # utterances shorter than a crop
    batch_size: int = 128  # per process (per GPU under DDP)
    num_workers: int = 4
    prefetch_factor: int = 2
    persistent_workers: bool = True
    pin_memory: bool = True
    drop_last: bool = True

    def __post_init__(self) -> None:
        if self.crop_seconds <= 0:
            raise ValueError(f"crop_seconds must be > 0, got {self.crop_seconds}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")

    @property
    def crop_samples(self) -> int:
        """Crop length in samples."""
        return int(round(self.crop_seconds * self.sample_rate))


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (stepped every optimiser step)."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-4  # never applied to 1-D params (biases, norms)
    grad_clip: Optional[float] = None  # max gradient norm; null = no clipping
    clip_mode: Literal["global", "per_tensor"] = "global"  # one norm over all gradients, or each tensor's (WeSpeaker)
    warmup_epochs: float = 0.0  # linear warm-up from warmup_start_lr to lr
    warmup_start_lr: float = 0.0
    schedule: Literal["cosine", "exponential", "constant"] = "exponential"
    final_lr: float = 5e-5  # lr at the last step (cosine / exponential)

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.schedule == "exponential" and self.final_lr <= 0:
            raise ValueError("final_lr must be > 0 for the exponential schedule")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")


@dataclass
class TrainerConfig:
    """Run settings the one trainer owns for every method."""

    epochs: int = 10
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = False  # autocast + (fp16) GradScaler on GPU; ignored on CPU
    amp_dtype: Literal["bf16", "fp16"] = "bf16"
    log_every: int = 50  # steps between per-step records in metrics.jsonl and tqdm updates
    progress: bool = True  # tqdm bar on rank 0
    save_every_epochs: int = 1  # checkpoints/epoch_N.pt every N epochs (latest.pt every epoch)
    save_every_steps: int = 0  # also write latest.pt every N steps inside an epoch (0 = off)
    keep_checkpoints: int = 3  # epoch_N.pt files kept (0 = all)
    nan_policy: Literal["stop", "skip"] = "stop"  # non-finite loss: stop, or skip the step
    max_nan_skips: int = 10  # consecutive skipped steps before stopping anyway
    max_steps_per_epoch: Optional[int] = None  # cap (quick runs, benchmarks)
    init_from: Optional[str] = None  # encoder.pt whose weights initialise the encoder
    find_unused_parameters: bool = False  # DDP: set when some parameters get no gradient in a step
    cudnn_benchmark: bool = True
    # Read every training file's header before training (all problems listed at once): auto = on for data dirs of
    # up to wesv.trainer.preflight.AUTO_MAX_UTTS utterances.
    preflight: Union[bool, Literal["auto"]] = "auto"
    # Keys beyond the safe ones (wesv.trainer.resume_check.SAFE_KEYS) that may differ from the checkpoint's config
    # on --resume, e.g. [optim.lr, optim.grad_clip] after a non-finite loss.
    resume_changes: list[str] = field(default_factory=list)
    num_threads: int = 0  # torch CPU threads per process; 0 = auto: the process's cores minus data.num_workers

    def __post_init__(self) -> None:
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = auto), got {self.num_threads}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")


@dataclass
class ValidationConfig:
    """``validation:``: a data dir with ``trials``, scored every ``every`` epochs on at most ``max_utts`` utterances."""

    data: str = ""  # Kaldi data dir with wav.scp and trials (e.g. data/test)
    every: int = 1  # epochs between validations (the last epoch is always validated)
    max_utts: int = 300  # random subset of the trials' utterances (0 = all); trials keep both sides in it
    seed: int = 0  # draws the subset

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("data must name a data dir with wav.scp and trials")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.max_utts < 0:
            raise ValueError(f"max_utts must be >= 0, got {self.max_utts}")


@dataclass
class EncoderSection:
    """``encoder:`` in YAML is ``name`` plus the fields of that encoder's own config dataclass."""

    name: str
    config: Any = None


@dataclass
class TrainConfig:
    """A complete training run: ``type`` picks the method (and the type of ``method``)."""

    type: str
    encoder: EncoderSection
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    augment: Optional[AugmentConfig] = None  # null = no augmentation
    method: Any = None  # the registered method's config dataclass
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    validation: Optional[ValidationConfig] = None  # null = no validation during training


def _section(entry_config: type | None, raw: Any, path: str | None, lines: dict, prefix: str) -> Any:
    if entry_config is None:
        if raw:
            raise WesvError(f"{where(path) if path else 'config'}: {prefix}: this {prefix} takes no settings")
        return None
    return from_dict(entry_config, raw or {}, path, prefix=prefix + ".", lines=lines)


def config_from_dict(d: dict, path: str | None = None, lines: dict[str, int] | None = None) -> TrainConfig:
    """Build a TrainConfig from a (YAML-loaded) mapping, typing ``encoder`` and ``method`` through the registries."""
    from wesv.models import ENCODERS
    from wesv.trainer.method import find_method

    lines = lines or {}
    loc = where(path) if path else "config"
    if not isinstance(d, dict):
        raise WesvError(f"{loc}: expected a mapping of sections, got {type(d).__name__}")
    d = dict(d)
    if "type" not in d or not isinstance(d["type"], str):
        raise WesvError(f"{loc}: missing 'type:' (the method name, e.g. classifier or dino)")
    if not isinstance(d.get("encoder"), dict) or not isinstance(d["encoder"].get("name"), str):
        raise WesvError(f"{loc}: missing 'encoder:' section with a 'name:' (a registered encoder)")
    enc_raw = dict(d.pop("encoder"))
    method_raw = d.pop("method", None) or {}
    if not isinstance(method_raw, dict):
        raise WesvError(f"{where(path, lines.get('method'))}: method: expected a mapping")
    try:
        method_entry = find_method(d["type"])
        enc_name = enc_raw.pop("name")
        enc_entry = ENCODERS.get(enc_name)
    except WesvError as err:
        raise WesvError(f"{loc}: {err}") from None
    encoder = EncoderSection(str(enc_name), _section(enc_entry.config, enc_raw, path, lines, "encoder"))
    method = _section(method_entry.config, method_raw, path, lines, "method")
    cfg = from_dict(TrainConfig, {**d, "encoder": encoder}, path, lines=lines)
    cfg.method = method
    return cfg


def config_to_dict(cfg: TrainConfig) -> dict:
    """The YAML-ready mapping of a config (``encoder`` flattened to ``name`` + fields)."""
    out = to_dict(cfg)
    enc = {"name": cfg.encoder.name}
    enc.update(to_dict(cfg.encoder.config) or {})
    out["encoder"] = enc
    out["method"] = to_dict(cfg.method) or {}
    order = ["type", "seed", "data", "augment", "encoder", "method", "optim", "trainer"]
    if cfg.validation is not None:  # absent when off: configs and checkpoints read as before validation existed
        order.append("validation")
    return {k: out[k] for k in order}


def load_config(path: str, overrides: list[str] | dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config, apply ``--section.key value`` overrides (typed by the dataclasses), validate."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise WesvError(f"cannot read config {path}: {err.strerror}; check the --config path") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise WesvError(f"{where(path, mark.line + 1 if mark else None)}: invalid YAML: "
                        f"{getattr(err, 'problem', err)}") from None
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    for key, value in (overrides or {}).items():
        if not isinstance(value, Override) and isinstance(value, str):
            value = Override(value)
        set_dotted(raw, key, value)
    # Unwrap overrides of keys that are not typed by a dataclass field (type, encoder.name).
    for key in ("type",):
        if isinstance(raw.get(key), Override):
            raw[key] = str(raw[key])
    if isinstance(raw.get("encoder"), dict) and isinstance(raw["encoder"].get("name"), Override):
        raw["encoder"]["name"] = str(raw["encoder"]["name"])
    return config_from_dict(raw, path, key_lines(text))


def save_config(cfg: TrainConfig, path: str) -> None:
    """Write the resolved config as YAML (atomic); loading it back gives an equal config."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        yaml.safe_dump(config_to_dict(cfg), f, sort_keys=False, default_flow_style=None)
    os.replace(tmp, path)

