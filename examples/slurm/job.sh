#!/bin/bash
# mcrgpu on several nodes under SLURM: one worker per node, each using every GPU of its node.
# Submit with: sbatch examples/slurm/job.sh   (edit the resources and the command first)
#SBATCH --job-name=mcrgpu
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --output=mcrgpu-%j.log
# One worker per GPU instead: --ntasks-per-node=4 --gpus-per-task=1 (SLURM binds one GPU to each
# task), or --ntasks-per-node=4 without binding and pass --gpus_per_task 1 to mcrgpu.

set -euo pipefail

# This script runs once, as a single process: mcrgpu started here would run as one worker. srun
# starts the workers (SLURM_PROCID, SLURM_STEP_NUM_TASKS), which mcrgpu detects and joins into one
# MultiWorkerMirroredStrategy; workers talk over TCP ports 8888 and up on each node.
# --kill-on-bad-exit ends every worker when one fails: a worker whose peers are gone waits forever.
# Every worker runs the same command; the same --seed gives every worker the same starting field.
srun --kill-on-bad-exit=1 mcrgpu gpus
srun --kill-on-bad-exit=1 mcrgpu reconstruct \
    --descriptor_filename results/ms_characterization.npz \
    --extent_x 256 --extent_y 256 --extent_z 256 \
    --data_folder results --information "${SLURM_JOB_ID}" --seed 0 --no_progress
