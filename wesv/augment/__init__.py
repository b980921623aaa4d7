"""wesv.augment: on-the-fly noise / music / babble / reverb from MUSAN- and RIRS_NOISES-style sets; per-crop channel."""
from wesv.augment.augmenter import AugmentConfig, Augmenter
from wesv.augment.channel import channel_augment
from wesv.augment.ops import add_noise, reverberate, speed_perturb
from wesv.augment.prepare import prepare_musan, prepare_rirs

__all__ = ["AugmentConfig", "Augmenter", "add_noise", "channel_augment", "prepare_musan", "prepare_rirs", "reverberate",
           "speed_perturb"]
