"""Build encoders by registry name, and save/load them as one self-describing file (name, config, weights)."""
import dataclasses
import hashlib
import os
import pickle
from typing import Any

import torch
from torch import nn

from wesv.config.typed import from_dict, to_dict
from wesv.errors import WesvError
from wesv.models.base import ENCODERS

FORMAT = "wesv-encoder"
VERSION = 1


def encoder_config_class(name: str) -> type:
    """The config dataclass of a registered encoder (unknown names raise WesvError listing the known ones)."""
    return ENCODERS.get(name).config


def build_encoder(name: str, cfg: Any = None) -> nn.Module:
    """Build encoder ``name`` from its config dataclass, a mapping of its fields, or None (defaults)."""
    cls = encoder_config_class(name)
    if cfg is None or isinstance(cfg, dict):
        cfg = from_dict(cls, cfg or {}, prefix="encoder.")
    elif not isinstance(cfg, cls):
        raise TypeError(f"encoder {name!r} needs a {cls.__name__} or a dict, got {type(cfg).__name__}")
    model = ENCODERS.get(name).factory(cfg)
    model.registry_name = name
    return model


def save_encoder(path: str, encoder: nn.Module) -> None:
    """Write the encoder's registry name, config and weights to ``path`` atomically (temp file, then rename).

    An encoder's ``export_files`` may first write parts beside ``path`` (a fine-tuned transformers model): the file
    then names them by config paths relative to its own directory and leaves their weights out.
    """
    name = getattr(encoder, "registry_name", "")
    if not name or not dataclasses.is_dataclass(getattr(encoder, "cfg", None)):
        raise ValueError("save_encoder needs a module made by build_encoder (registry_name and cfg are missing)")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    files = encoder.export_files(directory, os.path.basename(path)) if hasattr(encoder, "export_files") else {}
    config = {**to_dict(encoder.cfg), **files.get("config", {})}
    external = tuple(files.get("external_prefixes", ()))
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items() if not k.startswith(external)},
        "relative_paths": list(files.get("relative_paths", [])),
        "external_prefixes": list(external),
        # the parts beside the file change its digest (extraction fingerprints) and are checked on load
        "external_sha1": {rel: tree_sha1(os.path.join(directory, rel)) for rel in files.get("files", [])},
    }
    # pid-named, so the trainer's stale-temp cleanup (wesv.trainer.checkpoint.remove_stale_temps) knows it
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp.{os.getpid()}.pt")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def tree_sha1(path: str) -> str:
    """SHA-1 over a file, or over a directory's relative file names and contents (sorted)."""
    digest = hashlib.sha1()
    paths = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names)
    for p in paths:
        digest.update(os.path.relpath(p, path).encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _looks_like_text(path: str) -> bool:
    """Whether a file starts like text (a YAML config, a list) rather than a torch zip or pickle."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return bool(head) and b"\x00" not in head and not head.startswith((b"PK", b"\x80"))


def load_encoder(path: str, map_location: Any = "cpu") -> nn.Module:
    """Rebuild an encoder saved by ``save_encoder``, in eval mode; bad or missing files raise WesvError."""
    if not os.path.isfile(path):
        raise WesvError(f"{path}: encoder file not found; give the encoder.pt an experiment wrote")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 (torch raises IndexError/KeyError/... on a text or torn file)
        give = "give the encoder.pt an experiment exported, e.g. EXP_DIR/encoder.pt"
        if _looks_like_text(path):
            raise WesvError(f"{path}: not a readable encoder file (a text file: a config?); {give}") from None
        if isinstance(err, pickle.UnpicklingError):  # torch's weights-only refusal names no file type
            raise WesvError(f"{path}: not a readable encoder file (it holds other objects: a training "
                            f"checkpoint?); {give}") from None
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise WesvError(f"{path}: not a readable encoder file ({first}); re-export it or check the copy") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WesvError(f"{path}: not a wesv encoder file (no '{FORMAT}' header); give the encoder.pt an "
                        "experiment wrote, not a training checkpoint")
    if payload.get("version", 0) > VERSION:
        raise WesvError(f"{path}: encoder file version {payload['version']} is newer than this wesv "
                        f"(reads {VERSION}); upgrade wesv")
    base = os.path.dirname(os.path.abspath(path))
    for rel, sha1 in payload.get("external_sha1", {}).items():
        part = os.path.join(base, rel)
        if not os.path.exists(part):
            raise WesvError(f"{path}: needs {part} beside it (written with the encoder file); copy the whole "
                            "experiment dir")
        if tree_sha1(part) != sha1:
            raise WesvError(f"{path}: {part} is not the one this encoder file was written with (another export "
                            "replaced it?); re-export the encoder")
    try:
        config = dict(payload["config"])
        for key in payload.get("relative_paths", []):  # parts saved beside the encoder file
            config[key] = os.path.join(base, config[key])
        model = build_encoder(payload["name"], config)
        external = tuple(payload.get("external_prefixes", []))
        result = model.load_state_dict(payload["state_dict"], strict=not external)
        missing = [k for k in result.missing_keys if not k.startswith(external)]
        if missing or result.unexpected_keys:
            raise RuntimeError(f"missing keys {missing[:3]}, unexpected keys {result.unexpected_keys[:3]}")
    except (KeyError, RuntimeError) as err:
        raise WesvError(f"{path}: encoder file does not match its architecture ({err})") from None
    except WesvError as err:
        raise WesvError(f"{path}: {err}") from None
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        model.to(map_location)
    return model.eval()
