#!/usr/bin/env bash
# Distillation study (issue 13): gap closure over 5 seeds, constant temperature against one that
# starts high and falls, run with kta's own multirun and summarised by `kta compare`.
#
#     bash scripts/kd_temperature_study.sh [folder]      # about 10 minutes on 2 idle cores
#
# Setting: bench_distill.py's (teacher resnet18, 10 epochs on the digits at 16 px; student
# resnet10t, 30 epochs on 20 labelled digits per class, alpha 0.1, with the no-teacher baseline
# for gap closure). Schedules: constant T=4; cosine T 8 -> 1; linear T 8 -> 2.
set -euo pipefail
folder=${1:-outputs/study_kd_temperature}
mkdir -p "$folder" && cd "$folder"
quiet=(trainer.progress=false logger=none trainer.threads=2)
kta train model=resnet18 data.img_size=16 trainer.epochs=10 "${quiet[@]}"
teacher=$(cd outputs/train/latest && pwd -P)
common=(teacher="$teacher" student=resnet10t seed=0,1,2,3,4 trainer.epochs=30
        data.train_per_class=20 distill.alpha=0.1 distill.baseline=true "${quiet[@]}")
kta distill -m "${common[@]}" distill.temperature=4
kta distill -m "${common[@]}" distill.temperature=8 distill.temperature_end=1 \
    distill.temperature_schedule=cosine
kta distill -m "${common[@]}" distill.temperature=8 distill.temperature_end=2 \
    distill.temperature_schedule=linear
kta compare 'outputs/distill/*_sweep' metrics=[gap_closure,test_acc,scratch_test_acc,teacher_test_acc]
