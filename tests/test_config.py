"""Typed configs: the generic loader, overrides, errors naming key/file/line, and the saved config's round trip."""
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest
import yaml

from wesv.config import from_dict, load_config, save_config, to_dict
from wesv.config.typed import key_lines, parse_overrides
from wesv.errors import WesvError
from wesv.trainer import METHODS

from trainer_helpers import tiny_config


@dataclass
class Inner:
    lr: float = 0.1
    steps: int = 3
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    sizes: list[int] = field(default_factory=list)
    pair: tuple[float, float] = (1.0, 2.0)
    maybe: Optional[float] = None
    flag: bool = False


def test_from_dict_nested_optional_list_literal_and_widening():
    cfg = from_dict(Outer, {"name": "x", "inner": {"lr": 1, "mode": "b"}, "sizes": [1, 2], "pair": [3, 4],
                            "maybe": 2})
    assert cfg == Outer("x", Inner(lr=1.0, steps=3, mode="b"), [1, 2], (3.0, 4.0), 2.0)
    assert isinstance(cfg.inner.lr, float) and isinstance(cfg.maybe, float)
    assert from_dict(Outer, {"name": "y", "maybe": None}).maybe is None


@pytest.mark.parametrize("d, message", [
    ({"name": "x", "inner": {"lr": "abc"}}, "inner.lr: expected float, got 'abc'"),
    ({"name": "x", "inner": {"steps": 1.5}}, "inner.steps: expected int, got 1.5"),
    ({"name": "x", "inner": {"steps": True}}, "inner.steps: expected int, got True"),
    ({"name": "x", "inner": {"mode": "c"}}, "inner.mode: expected one of 'a', 'b', got 'c'"),
    ({"name": "x", "inner": {"lrr": 1}}, "inner.lrr: unknown key"),
    ({"name": "x", "sizes": [1, "z"]}, "sizes[1]: expected int, got 'z'"),
    ({"name": "x", "flag": "yes"}, "flag: expected bool"),
    ({"inner": {}}, "name: required key is missing"),
])
def test_from_dict_errors_name_the_full_key(d, message):
    with pytest.raises(WesvError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_dict(Outer, d, "conf.yaml")


def test_errors_name_file_and_line():
    text = "name: x\ninner:\n  steps: 2\n  lr: abc\n"
    with pytest.raises(WesvError, match=r"^conf\.yaml:4: inner\.lr: expected float, got 'abc'"):
        from_dict(Outer, yaml.safe_load(text), "conf.yaml", lines=key_lines(text))


def test_overrides_are_typed_by_the_field():
    ov = parse_overrides(["--inner.lr", "0.5", "--name=123", "--sizes", "[4, 5]", "--maybe", "null"])
    d = {"name": ov["name"], "inner": {"lr": ov["inner.lr"]}, "sizes": ov["sizes"], "maybe": ov["maybe"]}
    cfg = from_dict(Outer, d)
    assert cfg.name == "123" and cfg.inner.lr == 0.5 and cfg.sizes == [4, 5] and cfg.maybe is None
    with pytest.raises(WesvError, match=r"command line --inner\.lr: expected float, got 'fast'"):
        from_dict(Outer, {"name": "x", "inner": {"lr": parse_overrides(["--inner.lr", "fast"])["inner.lr"]}})
    with pytest.raises(WesvError, match="needs a value"):
        parse_overrides(["--inner.lr"])


def test_to_dict_round_trip():
    cfg = Outer("x", Inner(0.3, 4, "b"), [1], (0.5, 0.25), 1.5, True)
    assert from_dict(Outer, yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg


# ---- the training config ----------------------------------------------------------------------------------

@pytest.fixture
def tiny_config_text() -> str:
    return tiny_config()


def write(tmp_path, text: str) -> str:
    path = tmp_path / "conf.yaml"
    path.write_text(text)
    return str(path)


def test_method_registry_has_the_classifier():
    from wesv.trainer import find_method
    from wesv.methods.classifier import Classifier, ClassifierConfig

    entry = find_method("classifier")
    assert entry.factory is Classifier and entry.config is ClassifierConfig
    assert "classifier" in METHODS.names()
    with pytest.raises(WesvError, match="unknown method 'nope'"):
        find_method("nope")


def test_load_config_types_encoder_and_method_sections(tmp_path, tiny_config_text):
    from wesv.methods.classifier import ClassifierConfig
    from wesv.models import ENCODERS

    cfg = load_config(write(tmp_path, tiny_config_text), ["--optim.lr", "0.05", "--method.margin", "0.3",
                                                          "--trainer.epochs", "7"])
    assert isinstance(cfg.method, ClassifierConfig) and cfg.method.margin == 0.3
    assert isinstance(cfg.encoder.config, ENCODERS.get(cfg.encoder.name).config)
    assert cfg.optim.lr == 0.05 and cfg.trainer.epochs == 7


@pytest.mark.parametrize("override, message", [
    (["--optim.lr", "abc"], r"command line --optim\.lr: expected float, got 'abc'"),
    (["--optim.lrr", "1"], r"command line --optim\.lrr: unknown key"),
    (["--method.margins", "1"], r"command line --method\.margins: unknown key"),
    (["--type", "nope"], r"unknown method 'nope'"),
    (["--trainer.device", "tpu"], r"trainer\.device: expected one of 'auto', 'cpu', 'cuda'"),
])
def test_bad_overrides_fail_naming_the_key(tmp_path, tiny_config_text, override, message):
    with pytest.raises(WesvError, match=message):
        load_config(write(tmp_path, tiny_config_text), override)


def test_bad_yaml_value_names_file_and_line(tmp_path, tiny_config_text):
    path = write(tmp_path, tiny_config_text.replace("lr: 0.1", "lr: fast"))
    lineno = next(i for i, line in enumerate(tiny_config_text.splitlines(), 1) if "lr: 0.1" in line)
    with pytest.raises(WesvError, match=rf"conf\.yaml:{lineno}: optim\.lr: expected float, got 'fast'"):
        load_config(path)
    path = write(tmp_path, tiny_config_text + "bogus: 1\n")
    with pytest.raises(WesvError, match=r"conf\.yaml:\d+: bogus: unknown key"):
        load_config(path)


def test_saved_config_round_trips(tmp_path, tiny_config_text):
    cfg = load_config(write(tmp_path, tiny_config_text), ["--optim.betas", "[0.8, 0.9]", "--seed", "5"])
    out = tmp_path / "exp" / "config.yaml"
    save_config(cfg, str(out))
    again = load_config(str(out))
    assert again == cfg and again.optim.betas == (0.8, 0.9) and again.seed == 5


@pytest.mark.parametrize("conf", ["egs/mini/conf/supervised.yaml", "egs/voxceleb/conf/supervised_ecapa1024.yaml",
                                  "egs/voxceleb/conf/supervised_resnet34.yaml"])
def test_shipped_configs_load(conf):
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = load_config(os.path.join(root, conf))
    assert cfg.type == "classifier"
    if "voxceleb" in conf:
        assert (cfg.method.scale, cfg.method.margin, cfg.trainer.epochs) == (30.0, 0.2, 150)
        assert (cfg.optim.lr, cfg.optim.final_lr, cfg.optim.schedule) == (0.1, 5e-5, "exponential")
        assert (cfg.data.crop_seconds, cfg.data.batch_size) == (2.0, 128)


@pytest.mark.parametrize("text, value", [("1e-3", 1e-3), ("1E-3", 1e-3), ("2.5e+2", 250.0), ("3", 3.0),
                                         (".5", 0.5), ("1e5", 1e5)])
def test_every_python_float_form_is_a_float(tmp_path, tiny_config_text, text, value):
    """YAML 1.1 reads 1e-3 (no dot) as a string; a float field takes whatever float() takes, and ints."""
    cfg = load_config(write(tmp_path, tiny_config_text), ["--optim.lr", text])
    assert cfg.optim.lr == value and isinstance(cfg.optim.lr, float)
    cfg = load_config(write(tmp_path, tiny_config_text.replace("lr: 0.1", f"lr: {text}")))
    assert cfg.optim.lr == value and isinstance(cfg.optim.lr, float)
    assert from_dict(Outer, {"name": "x", "maybe": text}).maybe == value
