"""wesv.corpus: the embedded procedural multi-speaker speech corpus and its augmentation sets."""
from wesv.corpus.build import CorpusConfig, make_augment_sets, make_corpus, make_trials
from wesv.corpus.faces import FaceConfig
from wesv.corpus.session import ChannelConfig

__all__ = ["ChannelConfig", "CorpusConfig", "FaceConfig", "make_augment_sets", "make_corpus", "make_trials"]
