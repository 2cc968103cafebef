@ gangflash flash loaders: CRC through the chip's CRC calculation unit, shared by f1.s, f4.s and
@ l4.s (included at the end of each; never assembled on its own). Needs protocol.s.
@
@ crc_unit_entry: r0 = CRC job block, as crc_entry, except that CJ_TABLE holds the base address
@ of the CRC unit (0x40023000 on F1/F4/L4; the host has enabled its AHB clock, and a reset put
@ its polynomial, init and reversal settings at their defaults). For each page: CR.RESET (DR =
@ 0xFFFFFFFF), every word written to DR, DR read back into the next word of CJ_OUT: CRC-32/MPEG-2
@ of the page's little-endian words taken most significant bit first (RM0008 20.2, RM0090 4.2).
@ Page size: a multiple of 16 bytes. Halts at `bkpt #0`, r0 = 0.
@
@ Why a second CRC: the unit takes a word per 4 AHB cycles, so this loop costs about 2 cycles
@ per byte against ~6 for the table routine; at the 4 MHz the L4 runs after reset, that is the
@ difference between a verify that costs 3 % of the programming time and one that costs 15 %.
@
@ Registers: r0 CJ, r1 read address, r2 page size, r3 pages left, r4 CRC unit, r5 output
@ pointer, r6 r7 r10 r11 data, r8 IWDG target, r9 0xAAAA, r12 end of the page.

crc_unit_entry:
        ldr     r1, [r0, #CJ_FLAGS]
        IWDG_TARGET r8, r0, CJ_SCRATCH, r1
        ldr     r4, [r0, #CJ_TABLE]
        ldr     r1, [r0, #CJ_ADDRESS]
        ldr     r2, [r0, #CJ_PAGE_SIZE]
        ldr     r3, [r0, #CJ_COUNT]
        ldr     r5, [r0, #CJ_OUT]
crcu_page:
        cbz     r3, crcu_done
        str.w   r9, [r8]                @ IWDG reload (or the scratch word)
        movs    r6, #1
        str     r6, [r4, #8]            @ CR.RESET
        add.w   r12, r1, r2
crcu_block:
        ldmia   r1!, {r6, r7, r10, r11}
        str     r6, [r4]
        str     r7, [r4]
        str.w   r10, [r4]
        str.w   r11, [r4]
        cmp     r1, r12
        bne     crcu_block
        ldr     r6, [r4]
        str     r6, [r5], #4
        subs    r3, #1
        b       crcu_page
crcu_done:
        movs    r0, #0
        bkpt    #0
