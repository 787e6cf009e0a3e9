#!/bin/sh
# Guest half of the smoke test: proves a guest script ran, and under which kernel.
echo "MVTEST marker uname=$(uname -r)"
