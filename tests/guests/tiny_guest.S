/* A bare 64-bit test guest for hosts where Linux cannot run (PVM) and for
 * the start-up benchmark. minivmm enters it in long mode at a low physical
 * address, like a vmlinux. It marks its first instruction on the guest
 * port, prints a line on COM1, and exits through the guest port with the
 * status its command line asks for: "exit=N" (one digit) => status N,
 * "hang" => spin forever counting at guest address 0x6000
 * (for signal and pause tests), "tick" => print "tNN" (a counter kept in
 * guest memory at 0x6008, two hex digits) on COM1 every 2^18 loops
 * for ever (snapshot tests: a restored guest goes on counting), "abcd" =>
 * print a..z, a..z, ... on COM1 as fast as it can, for ever (a restored
 * guest goes on with the letter after the last one before the snapshot:
 * an I/O exit left half done at the pause would print that one twice),
 * anything else => 0. minivmm takes that
 * status only with --guest-exit; without it the guest then powers off. */
	.code64
	.section .text
	.globl _start
_start:
	/* boot marker 1: first guest instruction */
	mov	$0x4f1, %dx
	mov	$1, %al
	outb	%al, %dx

	/* print the banner, byte by byte, on COM1 */
	lea	banner(%rip), %rsi
1:	movb	(%rsi), %al
	test	%al, %al
	jz	2f
	mov	$0x3f8, %dx
	outb	%al, %dx
	inc	%rsi
	jmp	1b
2:
	/* rsi = boot_params (0x7000 here); cmd_line_ptr is at offset 0x228 */
	mov	$0x7000, %rbx
	movl	0x228(%rbx), %ebx
	cmpl	$0x676e6168, (%rbx)	/* "hang": spin until minivmm is stopped */
	je	5f
	cmpl	$0x6b636974, (%rbx)	/* "tick" */
	je	6f
	cmpl	$0x64636261, (%rbx)	/* "abcd" */
	je	8f
	xor	%eax, %eax
	cmpl	$0x74697865, (%rbx)	/* "exit" */
	jne	3f
	cmpb	$'=', 4(%rbx)
	jne	3f
	movzbl	5(%rbx), %eax
	sub	$'0', %eax
3:	mov	$0x4f0, %dx
	outb	%al, %dx
	/* Reached without --guest-exit (the port is then ignored): power off
	 * as Linux does, SLP_TYP(S5) | SLP_EN at the ACPI sleep control port. */
	mov	$0x600, %dx
	mov	$0x34, %al
	outb	%al, %dx
4:	hlt
	jmp	4b
5:	incq	0x6000		/* progress counter the lifecycle test watches */
	pause
	jmp	5b

6:	mov	$0x40000, %ecx	/* "tick": wait a while (no pause: it may exit) */
7:	nop
	dec	%ecx
	jnz	7b
	incq	0x6008
	mov	$0x3f8, %dx
	mov	$'t', %al
	outb	%al, %dx
	movzbl	0x6008, %ebx
	lea	hexdigits(%rip), %rsi
	mov	%ebx, %eax
	shr	$4, %eax
	movb	(%rsi,%rax), %al
	outb	%al, %dx
	mov	%ebx, %eax
	and	$0xf, %eax
	movb	(%rsi,%rax), %al
	outb	%al, %dx
	mov	$'\n', %al
	outb	%al, %dx
	jmp	6b

8:	mov	$0x3f8, %dx	/* "abcd": the letter is kept in guest memory at 0x6010 */
	movzbl	0x6010, %eax
	cmp	$26, %eax
	jb	9f
	xor	%eax, %eax
9:	mov	%eax, %ecx
	add	$'a', %al
	outb	%al, %dx
	inc	%ecx
	movb	%cl, 0x6010
	jmp	8b

	.section .rodata
banner:
	.asciz	"tiny guest: hello from the guest\n"
hexdigits:
	.ascii	"0123456789abcdef"
