#!/usr/bin/env bash
# Kaldi-style wrapper: tools/split_data_dir.sh ARGS... runs python -m wesv.bin.split_data_dir (see --help).
exec "${PYTHON:-python3}" -m wesv.bin.split_data_dir "$@"
