#!/bin/sh
# Guest half of the vCPU-count test: the host compares this with --cpus.
echo "MVTEST cpus=$(grep -c ^processor /proc/cpuinfo)"
