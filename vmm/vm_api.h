/* The VM's side of the control socket: the struct api_ops that
 * vmm/api_proto.c drives, over a struct vm. */
#ifndef MINIVMM_VM_API_H
#define MINIVMM_VM_API_H

#include "vmm/api_proto.h"

extern const struct api_ops vm_api_ops;   /* ctx: the struct vm */

#endif
