#!/usr/bin/env bash
# The measured tables of docs/results.rst and docs/fidelity.rst, each resumable:
# rerun the same command after an interruption and it continues (--resume).
#   bash benchmarks/run_results.sh OUT_DIR [digits|ablations|fashion_mnist|fashion_mnist_ablations|
#                                            selection_digits|selection_fashion_mnist|
#                                            default_digits|default_fashion_mnist|calibration|
#                                            estimation_digits|estimation_fashion_mnist ...]
# Each run uses one torch thread; the three can run side by side on two cores.
set -euo pipefail
out=${1:-results}
shift || true
runs=${*:-digits ablations fashion_mnist fashion_mnist_ablations}
exp="python -m sklearn_crtcl.experiments --threads 1 --no-progress --resume"
digits="--dataset digits --initial-size 100 --query-size 50 --cycles 5 --trials 3 \
  --epochs 20 --width 8 --batch-size 32 --subset-size 500"
fmnist="--dataset fashion_mnist --n-train 5000 --n-test 2000 --initial-size 200 \
  --query-size 100 --cycles 4 --trials 3 --epochs 15 --width 8 --batch-size 64 \
  --subset-size 2000"
ablations="crtcl_loss ll4al_loss tod_loss crtcl_query ll4al_query lplgrad_query tod_query"
# batch selection beyond top-k and the peers (BADGE, CoreSet): every selection for CrtCl,
# top-k, power and balanced for TOD and LPLgrad
selection="random entropy badge coreset crtcl crtcl:power crtcl:softmax crtcl:rank \
  crtcl:balanced crtcl:cluster tod tod:power tod:balanced lplgrad lplgrad:power lplgrad:balanced"
# the strategies' default selection (rank) against top-k and random, for the three
# learned strategies
default="random crtcl crtcl:rank tod tod:rank lplgrad lplgrad:rank"
# accuracy estimates and stopping over more cycles (a plateau to detect): the top-k
# methods and stochastic ones, whose proposals give the importance estimate, and the
# probabilistic critic (the critic estimate)
estimation="random entropy entropy:rank crtcl crtcl:rank crtcl_bce tod:rank lplgrad:rank"
for run in $runs; do
  case $run in
    digits) $exp $digits --output-dir "$out/digits" ;;
    ablations) $exp $digits --output-dir "$out/digits_ablations" --methods random $ablations ;;
    fashion_mnist) $exp $fmnist --output-dir "$out/fashion_mnist" ;;
    fashion_mnist_ablations) $exp $fmnist --output-dir "$out/fashion_mnist_ablations" \
      --methods random $ablations ;;
    selection_digits) $exp $digits --output-dir "$out/selection_digits" --methods $selection ;;
    selection_fashion_mnist) $exp $fmnist --output-dir "$out/selection_fashion_mnist" \
      --methods $selection ;;
    default_digits) $exp $digits --output-dir "$out/default_digits" --methods $default ;;
    default_fashion_mnist) $exp $fmnist --output-dir "$out/default_fashion_mnist" \
      --methods $default ;;
    estimation_digits) $exp $digits --cycles 12 --output-dir "$out/estimation_digits" \
      --methods $estimation ;;
    estimation_fashion_mnist) $exp $fmnist --cycles 10 \
      --output-dir "$out/estimation_fashion_mnist" --methods $estimation ;;
    calibration) python -m sklearn_crtcl.experiments.calibration --num-threads 1 --resume \
      --output-dir "$out/calibration" ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
done
