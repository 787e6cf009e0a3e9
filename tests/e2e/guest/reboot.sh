#!/bin/sh
# The guest asks for a reboot: minivmm must stop the VM and say so.
echo "MVTEST rebooting"
sync
reboot -f
