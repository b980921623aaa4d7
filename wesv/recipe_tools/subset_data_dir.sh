#!/usr/bin/env bash
# Kaldi-style wrapper: tools/subset_data_dir.sh ARGS... runs python -m wesv.bin.subset_data_dir (see --help).
exec "${PYTHON:-python3}" -m wesv.bin.subset_data_dir "$@"
