/* A tiny AML (ACPI Machine Language) writer: just the objects our DSDT
 * needs (names, integers, strings, packages, scopes, devices, resource
 * templates). Package lengths are patched when a package is closed. */
#ifndef MINIVMM_X86_AML_H
#define MINIVMM_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf;
	size_t len, cap;
	bool overflow;     /* set when something did not fit; the output is then unusable */
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
void aml_integer(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
void aml_eisaid(struct aml *a, const char *id);       /* "PNP0501" */
/* Name(NAME, <the object the caller appends next>) */
void aml_name(struct aml *a, const char *name);
/* Packages: open returns a mark for the matching close. */
size_t aml_package_open(struct aml *a, uint8_t n_elements);
size_t aml_scope_open(struct aml *a, const char *name);    /* "\\_SB_" */
size_t aml_device_open(struct aml *a, const char *name);   /* "COM1" */
void aml_close(struct aml *a, size_t mark);

/* Resource template bodies: append descriptors to a small byte array, then
 * emit it as a Buffer with aml_resource_template (the end tag is added). */
struct aml_res {
	uint8_t b[128];
	size_t len;
	bool overflow;
};
void aml_res_io(struct aml_res *r, uint16_t port, uint8_t len);
void aml_res_irq(struct aml_res *r, unsigned irq);          /* IRQNoFlags, ISA edge high */
void aml_res_mem32(struct aml_res *r, uint32_t base, uint32_t len);
void aml_res_ext_irq(struct aml_res *r, uint32_t gsi, bool level);  /* Interrupt(ResourceConsumer, ...) */
/* Host bridge windows (ResourceProducer, MinFixed, MaxFixed, PosDecode):
 * WordBusNumber, WordIO (EntireRange), DWordMemory (NonCacheable, ReadWrite). */
void aml_res_word_bus(struct aml_res *r, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml_res *r, uint16_t min, uint16_t max);
void aml_res_dword_mem(struct aml_res *r, uint32_t min, uint32_t max);
void aml_resource_template(struct aml *a, const struct aml_res *r);

#endif
