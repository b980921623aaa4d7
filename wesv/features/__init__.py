"""Front-ends computed inside the model, on its device: the FrontEnd protocol and Kaldi-compatible log-mel fbank."""
from wesv.features.fbank import Fbank, FbankConfig
from wesv.features.frontend import FrontEnd

__all__ = ["Fbank", "FbankConfig", "FrontEnd"]
