"""wesv.data: Kaldi data dirs, trials, VoxCeleb lists, audio loading and cropping."""
from wesv.data.audio import audio_info, audio_num_samples, crop, crops, load_audio
from wesv.data.datadir import (DataDir, fix_data_dir, read_scp, read_spk2utt, read_utt2spk, shard, split_data_dir,
                               split_indices, subset_data_dir, utt2spk_to_spk2utt, validate_data_dir, write_scp)
from wesv.data.trials import Trials, read_trials, write_trials

__all__ = [
    "DataDir", "Trials", "audio_info", "audio_num_samples", "crop", "crops", "fix_data_dir", "load_audio",
    "read_scp", "read_spk2utt", "read_trials", "read_utt2spk", "shard", "split_data_dir", "split_indices",
    "subset_data_dir", "utt2spk_to_spk2utt", "validate_data_dir", "write_scp", "write_trials",
]
