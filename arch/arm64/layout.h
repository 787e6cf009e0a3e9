/* arm64 guest-physical memory map. Like QEMU's "virt" board where that
 * costs nothing (RAM at 1 GiB, the GIC at 128 MiB, the PCI windows below
 * RAM), so a guest kernel that boots there finds familiar addresses; every
 * device is MMIO and announced in the device tree (arch/arm64/fdt.c).
 *
 *   0x0800_0000  GICv3 distributor                     64 KiB
 *   0x0808_0000  GICv3 ITS (MSIs of PCI devices)       128 KiB
 *   0x0900_0000  8250 UART (ns16550a, 1-byte regs)     4 KiB
 *   0x0901_0000  minivmm guest port (exit status)      4 KiB
 *   0x0a00_0000  virtio-mmio, 16 slots of 0x200
 *   0x0c00_0000  GICv3 redistributors, 128 KiB per vCPU (up to 256: 32 MiB)
 *   0x1000_0000  PCI memory window (BARs)              752 MiB
 *   0x3f00_0000  PCI ECAM, bus 0                       1 MiB
 *   0x4000_0000  RAM, --mem MiB of it, up to the 40-bit IPA limit
 */
#ifndef MINIVMM_ARM64_LAYOUT_H
#define MINIVMM_ARM64_LAYOUT_H

#define ARM64_GICD_BASE         0x08000000ull
#define ARM64_GICD_SIZE         0x10000ull
#define ARM64_GITS_BASE         0x08080000ull
#define ARM64_GITS_SIZE         0x20000ull
#define ARM64_UART_BASE         0x09000000ull
#define ARM64_UART_SIZE         0x1000ull
#define ARM64_GUEST_PORT_BASE   0x09010000ull
#define ARM64_GUEST_PORT_SIZE   0x1000ull
#define ARM64_VIRTIO_MMIO_BASE  0x0a000000ull
#define ARM64_VIRTIO_MMIO_STRIDE 0x200ull
#define ARM64_VIRTIO_MMIO_MAX   16
#define ARM64_GICR_BASE         0x0c000000ull
#define ARM64_GICR_STRIDE       0x20000ull     /* RD_base + SGI_base frames per vCPU */
#define ARM64_GICR_MAX_CPUS     256
#define ARM64_PCI_MMIO_BASE     0x10000000ull
#define ARM64_PCI_MMIO_SIZE     0x2f000000ull
#define ARM64_PCI_ECAM_BASE     0x3f000000ull
#define ARM64_PCI_ECAM_SIZE     0x100000ull    /* bus 0 only: 32 devices x 8 functions x 4 KiB */
#define ARM64_RAM_BASE          0x40000000ull
#define ARM64_IPA_LIMIT         (1ull << 40)   /* KVM_CREATE_VM type 0: 40-bit guest physical */

/* Interrupts. SPI n is GIC INTID 32 + n and, with the routing table minivmm
 * writes (msi_routes), GSI n for irqfds. MSI GSIs start after the SPIs. */
#define ARM64_GIC_NR_IRQS       128            /* 32 private + 96 SPIs */
#define ARM64_GIC_NR_SPIS       (ARM64_GIC_NR_IRQS - 32)
#define ARM64_UART_SPI          1
#define ARM64_VIRTIO_MMIO_FIRST_SPI 16

/* PPIs (INTID 16 + n) of the architected timer, as KVM wires them, and the
 * GIC maintenance interrupt. */
#define ARM64_PPI_TIMER_SEC_PHYS 13
#define ARM64_PPI_TIMER_PHYS    14
#define ARM64_PPI_TIMER_VIRT    11
#define ARM64_PPI_TIMER_HYP     10
#define ARM64_PPI_GIC_MAINT     9

/* Boot blobs. The device tree may be at most 2 MiB and must not share a
 * 2 MiB block with anything mapped differently: it gets the last 2 MiB block
 * of RAM to itself. */
#define ARM64_FDT_MAX_SIZE      0x200000ull
#define ARM64_KERNEL_ALIGN      0x200000ull    /* the Image goes text_offset above a 2 MiB boundary */
#define ARM64_INITRD_WINDOW     (32ull << 30)  /* initrd within the 1 GiB-aligned 32 GiB window holding the kernel */

/* 8250 clock, as the device tree announces it (only the divisor math in
 * the guest depends on it; the UART is as fast as the vCPU). */
#define ARM64_UART_CLOCK_HZ     1843200u

#endif
