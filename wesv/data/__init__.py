"""wesv.data: Kaldi data dirs, trials, VoxCeleb lists, audio loading and cropping, training datasets."""
from wesv.data.audio import audio_info, audio_num_samples, crop, crops, load_audio
from wesv.data.datadir import (DataDir, read_scp, read_spk2utt, read_utt2spk, shard, split_indices, utt2spk_to_spk2utt,
                               write_scp)
from wesv.data.datadir_ops import fix_data_dir, split_data_dir, subset_data_dir
from wesv.data.streams import Stream, read_stream
from wesv.data.trials import Trials, read_trials, write_trials
from wesv.data.validate import validate_data_dir

__all__ = [
    "DataDir", "Stream", "Trials", "audio_info", "audio_num_samples", "crop", "crops", "fix_data_dir", "load_audio",
    "read_scp", "read_spk2utt", "read_stream", "read_trials", "read_utt2spk", "shard", "split_data_dir",
    "split_indices", "subset_data_dir", "utt2spk_to_spk2utt", "validate_data_dir", "write_scp", "write_trials",
]
