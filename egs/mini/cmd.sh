# How parallel jobs run: `$cmd JOB=1:N dir/log/x.JOB.log command ... JOB ...` runs N jobs (JOB = 1..N in the
# command and the log path); `$cmd dir/log/x.log command ...` runs one. Pick one back-end:

# Local processes on this machine, at most --max-jobs-run at once (laptop, one GPU node):
export cmd="tools/run_local.py --max-jobs-run 2"

# A Slurm array job (sbatch --array=1-N%K --wait); partition, account, time, mem, gres in conf/slurm.conf:
# export cmd="tools/run_slurm.py --config conf/slurm.conf --max-jobs-run 100"
