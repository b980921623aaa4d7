"""Front-ends computed inside the model, on its device: the FrontEnd protocol, Kaldi-compatible log-mel fbank and a
local transformers speech SSL model (every hidden state)."""
from wesv.features.fbank import Fbank, FbankConfig
from wesv.features.frontend import FrontEnd
from wesv.features.hf_frontend import HfFrontEndConfig, HfSslFrontEnd

__all__ = ["Fbank", "FbankConfig", "FrontEnd", "HfFrontEndConfig", "HfSslFrontEnd"]
