#!/usr/bin/env bash
# Kaldi-style wrapper: tools/validate_data_dir.sh ARGS... runs python -m wesv.bin.validate_data_dir (see --help).
exec "${PYTHON:-python3}" -m wesv.bin.validate_data_dir "$@"
