/* The control socket's client, in the same binary: minivmm ctl PATH CMD
 * sends {"cmd":CMD}, prints the reply line, and exits 0, or 1 on an error
 * reply or when it cannot talk to the socket (one "minivmm: error:" line).
 * "minivmm ctl PATH --raw LINE" sends LINE as it is (tests). */
#ifndef MINIVMM_CTL_H
#define MINIVMM_CTL_H

/* argv[1] is "ctl". Returns the exit status. */
int ctl_main(int argc, char **argv);

#endif
