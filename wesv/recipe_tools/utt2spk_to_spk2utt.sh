#!/usr/bin/env bash
# Kaldi-style wrapper: tools/utt2spk_to_spk2utt.sh ARGS... runs python -m wesv.bin.utt2spk_to_spk2utt (see --help).
exec "${PYTHON:-python3}" -m wesv.bin.utt2spk_to_spk2utt "$@"
