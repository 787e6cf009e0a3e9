#include <criterion/criterion.h>
#include <string.h>

#include "arch/x86/cpu.h"

static struct kvm_cpuid_entry2 e[8];

static void setup(void)
{
	memset(e, 0, sizeof(e));
	e[0].function = 0x1;
	e[0].ebx = 0xffff0800;   /* stale APIC ID and count from the host */
	e[1].function = 0xb;
	e[1].index = 0;
	e[2].function = 0xb;
	e[2].index = 1;
	e[3].function = 0xb;
	e[3].index = 2;
	e[4].function = 0x80000008;
	e[4].ecx = 0x0000f0ff;
	e[5].function = 0x4;
	e[5].eax = 0xfc004121;   /* L1 data cache */
	e[6].function = 0x4;
	e[6].eax = 0xfc03c163;   /* L3 */
	e[7].function = 0x8000001e;
}

TestSuite(x86_cpu, .init = setup);

Test(x86_cpu, core_id_bits)
{
	cr_assert_eq(x86_core_id_bits(1), 0);
	cr_assert_eq(x86_core_id_bits(2), 1);
	cr_assert_eq(x86_core_id_bits(3), 2);
	cr_assert_eq(x86_core_id_bits(4), 2);
	cr_assert_eq(x86_core_id_bits(5), 3);
}

Test(x86_cpu, four_cpu_topology_for_vcpu3)
{
	x86_cpuid_set_topology(e, 8, 3, 4, 1);
	cr_assert_eq(e[0].ebx >> 24, 3, "APIC ID");
	cr_assert_eq((e[0].ebx >> 16) & 0xff, 4, "logical count");
	cr_assert_eq(e[0].ebx & 0xffff, 0x0800, "CLFLUSH size kept");
	cr_assert(e[0].edx & (1u << 28), "HTT");
	cr_assert(e[0].ecx & (1u << 31), "hypervisor bit");
	cr_assert(e[0].ecx & (1u << 24), "TSC deadline");
	cr_assert_eq(e[1].ebx, 1, "1 thread per core");
	cr_assert_eq((e[1].ecx >> 8) & 0xff, 1, "SMT level");
	cr_assert_eq(e[2].eax, 2, "shift to the package");
	cr_assert_eq(e[2].ebx, 4, "4 cores");
	cr_assert_eq((e[2].ecx >> 8) & 0xff, 2, "core level");
	cr_assert_eq(e[3].ebx, 0, "level 2 invalid");
	cr_assert_eq(e[1].edx, 3);
	cr_assert_eq(e[2].edx, 3);
	cr_assert_eq(e[4].ecx & 0xff, 3, "AMD NC");
	cr_assert_eq((e[4].ecx >> 12) & 0xf, 2, "AMD ApicIdCoreIdSize");
	cr_assert_eq(e[5].eax >> 26, 3, "leaf 4 cores - 1");
	cr_assert_eq((e[5].eax >> 14) & 0xfff, 0, "L1 private");
	cr_assert_eq((e[6].eax >> 14) & 0xfff, 3, "L3 shared by 4");
	cr_assert_eq(e[7].eax, 3);
}

Test(x86_cpu, single_cpu_has_no_htt)
{
	e[0].edx = 0;
	x86_cpuid_set_topology(e, 8, 0, 1, 0);
	cr_assert_eq(e[0].ebx >> 24, 0);
	cr_assert_eq((e[0].edx >> 28) & 1, 0);
	cr_assert_eq(e[0].ecx & (1u << 24), 0);
	cr_assert_eq(e[2].ebx, 1);
	cr_assert_eq(e[4].ecx & 0xff, 0);
}
