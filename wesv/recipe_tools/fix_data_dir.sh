#!/usr/bin/env bash
# Kaldi-style wrapper: tools/fix_data_dir.sh ARGS... runs python -m wesv.bin.fix_data_dir (see --help).
exec "${PYTHON:-python3}" -m wesv.bin.fix_data_dir "$@"
