/* x86 guest-physical memory map. Everything the loader writes lies in the
 * first MiB except the kernel (1 MiB up) and the initrd (top of low RAM). */
#ifndef MINIVMM_X86_LAYOUT_H
#define MINIVMM_X86_LAYOUT_H

#define X86_GDT_GPA          0x500ull
#define X86_ZERO_PAGE_GPA    0x7000ull      /* struct boot_params */
#define X86_BOOT_STACK_GPA   0x8ff0ull
#define X86_PML4_GPA         0x9000ull
#define X86_PDPT_GPA         0xa000ull
#define X86_PD_GPA           0xb000ull      /* 4 pages: identity map of 4 GiB */
#define X86_CMDLINE_GPA      0x20000ull
#define X86_CMDLINE_MAX      0x10000ull
#define X86_EBDA_START       0x9fc00ull     /* end of conventional RAM in the e820 */
#define X86_ACPI_GPA         0xe0000ull     /* RSDP is searched for here */
#define X86_ACPI_SIZE        0x10000ull
#define X86_MPTABLE_GPA      0xf0000ull     /* MP configuration table (its pointer is at X86_EBDA_START) */
#define X86_MPTABLE_SIZE     0xf000ull
#define X86_RESET_VECTOR_GPA 0xffff0ull     /* where a real-mode reset jumps (BIOS entry) */
#define X86_KERNEL_GPA       0x100000ull    /* bzImage protected-mode code */
#define X86_LOWMEM_END       0xc0000000ull  /* 3 GiB: [3G, 4G) is the MMIO hole */
#define X86_HIGHMEM_START    0x100000000ull
#define X86_IOAPIC_GPA       0xfec00000ull
#define X86_LAPIC_GPA        0xfee00000ull
#define X86_TSS_GPA          0xfffbd000ull  /* KVM_SET_TSS_ADDR: 3 pages */
#define X86_IDENTITY_MAP_GPA 0xfffbc000ull

/* virtio-mmio windows, one 4 KiB page each, and their GSIs on the IOAPIC
 * (5..15 are free: the only ISA device is COM1 on 4). */
#define X86_VIRTIO_MMIO_BASE 0xd0000000ull
#define X86_VIRTIO_MMIO_STRIDE 0x1000ull
#define X86_VIRTIO_MMIO_FIRST_GSI 5
#define X86_VIRTIO_MMIO_MAX 11

/* PCI: every BAR lives in this window of the MMIO hole, up to the IOAPIC
 * (devices/pci/README.md). Registered as one MMIO range; the DSDT's PCI0
 * _CRS announces it. */
#define X86_PCI_MMIO_BASE    0xe0000000ull
#define X86_PCI_MMIO_SIZE    (X86_IOAPIC_GPA - X86_PCI_MMIO_BASE)

/* Interrupt pins of the in-kernel irqchip: GSI routes KVM starts with. */
#define X86_IOAPIC_PINS      24
#define X86_PIC_PINS         16
#define X86_N_DEFAULT_ROUTES (X86_IOAPIC_PINS + X86_PIC_PINS)

/* I/O ports of the platform devices. */
#define X86_COM1_PORT        0x3f8
#define X86_COM1_IRQ         4
#define X86_POWER_CTL_PORT   0x600

#endif
