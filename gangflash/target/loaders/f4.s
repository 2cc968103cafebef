@ gangflash streaming flash loader for the STM32F2/F4/F7 flash interface (RM0090 section 3).
@ Rebuild f4.bin: python -m gangflash.target.loaders.build  (checked by
@ tests/target/loaders/test_reassemble.py). Our own code; facts from shared/reference.
@
@ Protocol: see protocol.s. Same loop as f1.s; differences:
@ - Parallelism: CB_FLAGS bits 9:8 = PSIZE (0 x8, 1 x16, 2 x32), unit = 1 << PSIZE bytes. Each
@   access must match PSIZE (else PGPERR), so the loop is instantiated once per width (macro
@   STREAM below) and the entry jumps to the one asked for. PSIZE 3 (x64, needs external VPP)
@   stops at once with STATUS_BAD_REQUEST, touching nothing.
@ - CR = PG | PSIZE << 8 is written before every unit (CR +0x10; also clears SER/MER/SNB and the
@   interrupt enables; LOCK is unaffected by writing 0). It is a store on the critical path; a CR
@   write while BSY would stall the bus, so it cannot move into the overlap.
@ - SR +0x0C: BSY bit 16; errors OPERR 1 | WRPERR 4 | PGAERR 5 | PGPERR 6 | PGSERR 7 = 0xF2
@   (OPERR only rises with ERRIE, which the CR write above clears). EOP is not used.
@ - Programming over non-erased cells raises no flag on F4 (cells AND): only FLAG_VERIFY
@   catches it.
@ Timing: critical path ~10 cycles (tst/bne, tst/bne, cbnz, CR store, data store) against 16 us
@ per unit (256 cycles at the 16 MHz reset clock).
@ Simulated (x32): 11.6 cycles per unit beyond the datasheet time; 64 KiB in 1.045x of 0.262 s.
@
@ Registers in the loop: as f1.s, plus r10 = PG | PSIZE << 8 (the CR value).

        .syntax unified
        .cpu    cortex-m4
        .thumb
        .include "protocol.s"

        .equ    FLASH_SR,       0x0C
        .equ    FLASH_CR,       0x10
        .equ    SR_BSY,         1 << 16
        .equ    SR_ERRORS,      0xF2    @ PGSERR | PGPERR | PGAERR | WRPERR | OPERR
        .equ    CR_PG,          1 << 0

        .text
        ENTRY_TABLE

program_entry:
        mov     r12, r0
        ldr     r1, [r0, #CB_RP]
        ldr     r2, [r0, #CB_DEST]
        ldr     r3, [r0, #CB_REMAINING]
        ldr     r6, [r0, #CB_FLASH_REGS]
        ldr.w   r11, [r0, #CB_RING_END]
        ldr     r4, [r0, #CB_FLAGS]
        and     lr, r4, #FLAG_VERIFY
        and     r10, r4, #(3 << FLAG_PSIZE_SHIFT)
        orr     r10, r10, #CR_PG        @ r10 = PG | PSIZE << 8
        IWDG_TARGET r8, r0, CB_SCRATCH, r4
        movs    r4, #STATUS_RUNNING
        str     r4, [r0, #CB_STATUS]
        ubfx    r4, r10, #FLAG_PSIZE_SHIFT, #2
        tbb     [pc, r4]
psize_table:
        .byte   (idle_x8 - psize_table) / 2
        .byte   (idle_x16 - psize_table) / 2
        .byte   (idle_x32 - psize_table) / 2
        .byte   (bad_request - psize_table) / 2
        .balign 2

@ ---- one streaming loop per width (see f1.s for the walk-through) ----------------------------
        .macro  STREAM w, unit, ld, st
wait_\w:                                @ until the unit in flight is done
        str.w   r9, [r8]
        ldr     r4, [r6, #FLASH_SR]
        tst.w   r4, #SR_BSY
        bne     wait_\w
        tst.w   r4, #SR_ERRORS
        bne     flash_error
        cbnz    r0, after_unit_\w       @ verify, or nothing loaded
program_\w:                             @ r7 = data for r2, r1 = its slot
        str.w   r10, [r6, #FLASH_CR]    @ CR = PG | PSIZE
        \st     r7, [r2]                @ the unit starts (BSY); the rest overlaps it
        mov     r5, r1
        adds    r1, r1, #\unit          @ RP of the next unit, with the wrap
        cmp     r1, r11
        bne     1f
        ldr.w   r1, [r12, #CB_RING_START]
1:      str.w   r2, [r12, #CB_DEST]     @ publish: the unit in flight is the next to complete
        str.w   r3, [r12, #CB_REMAINING]
        str.w   r5, [r12, #CB_RP]       @ RP last; releases the previous unit's slot
        adds    r2, r2, #\unit
        movs    r0, #1                  @ nothing loaded (yet)
        str.w   r9, [r8]                @ IWDG reload, once per unit
        subs    r3, r3, #\unit
        beq     wait_\w                 @ that was the last unit
        ldr.w   r4, [r12, #CB_WP]
        cmp     r4, r1
        beq     wait_\w                 @ ring empty
        ldr.w   r4, [r12, #CB_ABORT]
        cmp     r4, #0
        bne     wait_\w                 @ the host asks to stop
        \ld     r7, [r1]                @ load the next unit
        mov     r0, lr                  @ program it at once (or verify first)
        b       wait_\w
after_unit_\w:                          @ the unit in flight (at r2 - unit, data at r5) is done
        cmp     lr, #0
        beq     2f
        \ld     r4, [r2, #-\unit]       @ verify: read it back
        \ld     r7, [r5]
        cmp     r4, r7
        bne     verify_mismatch
        \ld     r7, [r1]                @ reload the next unit's data (r7 was borrowed)
2:      cmp     r0, #1
        bne     program_\w
        str.w   r2, [r12, #CB_DEST]     @ publish: all units before r2 are done
        str.w   r3, [r12, #CB_REMAINING]
        str.w   r1, [r12, #CB_RP]
idle_\w:                                @ CB is current; nothing in flight
        ldr.w   r0, [r12, #CB_ABORT]
        cmp     r0, #0
        bne     aborted
        cmp     r3, #0
        beq     done
idle_spin_\w:                           @ until the host writes data or asks to stop
        str.w   r9, [r8]                @ IWDG reload (or the scratch word)
        ldr.w   r4, [r12, #CB_WP]
        ldr.w   r0, [r12, #CB_ABORT]
        subs    r4, r4, r1
        orrs    r4, r4, r0
        beq     idle_spin_\w            @ ring empty and no abort: one block per turn
        cmp     r0, #0
        bne     aborted
        \ld     r7, [r1]
        b       program_\w
        .endm

        STREAM  x32, 4, ldr, str

@ ---- stop (between the x32 and x16 loops, so that the hot branches to it stay 16-bit) -------
bad_request:
        movs    r0, #STATUS_BAD_REQUEST
        b       halt                    @ PG was never set, nothing to undo
aborted:
        movs    r0, #STATUS_ABORTED
        b       stop
done:
        movs    r0, #STATUS_DONE
        b       stop
verify_mismatch:
        movs    r0, #STATUS_VERIFY
        b       stop
flash_error:                            @ the CB already holds the failing unit (published)
        str.w   r4, [r12, #CB_ERROR_SR]
        movs    r0, #STATUS_FLASH_ERROR
stop:
        ldr     r4, [r6, #FLASH_CR]
        bic     r4, r4, #CR_PG
        str     r4, [r6, #FLASH_CR]
halt:
        str.w   r0, [r12, #CB_STATUS]   @ last: a host polling STATUS sees a clean CR
        ldr.w   r1, [r12, #CB_DEST]
        ldr.w   r2, [r12, #CB_REMAINING]
        ldr     r3, [r6, #FLASH_SR]
        bkpt    #0


        STREAM  x16, 2, ldrh, strh
        STREAM  x8, 1, ldrb, strb


        .include "crc32.s"
        .include "crc_unit.s"
