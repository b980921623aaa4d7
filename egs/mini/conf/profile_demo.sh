# The demo profile (the README's first command): every system of the table on the default embedded corpus
# (120 training speakers x 10 utterances of 2-5 s) with the epochs of conf/*.yaml; budget 20 minutes on 2 idle
# CPU cores, measured 36 at cc797a3 (README: the per-view channel augmentation doubled DINO's epoch). One seed;
# differences between systems smaller than a few points of EER are within its noise.
profile_corpus_opts=""
supervised_opts=""
dino_opts=""
num_clusters=150      # pseudo-speakers per round, ~1.25x the 120 training speakers
moco_opts=""
pseudo_opts=""
mhfa_opts=""
dlg_rounds=1          # DLG-LC and multi-modal rounds (stages 8, 9): one each, to stay within 20 minutes
mhfa=false            # stages 11-12 (wav2vec 2.0 pretraining + MHFA, ~6 CPU minutes): bash run.sh --mhfa true
cdino_opts=""
num_clusters=150      # pseudo-speakers per round, ~1.25x the 120 training speakers
controls=false        # the claims profile's round-1 controls (shuffled ids, true labels)
