@ gangflash streaming flash loader for the STM32L4 flash interface (RM0351/RM0394 section 3;
@ G0/G4/WB have the same programming model). Rebuild l4.bin: python -m
@ gangflash.target.loaders.build (checked by tests/target/loaders/test_reassemble.py). Our own
@ code; facts from shared/reference.
@
@ Protocol: see protocol.s. Same loop as f1.s; differences:
@ - Unit: a 64-bit double word, programmed as two 32-bit stores, low address first; the second
@   store starts the operation. DEST must be 8-aligned (else PGAERR), the ring holds whole
@   double words (its size is a multiple of 16, the host writes units).
@ - Registers (CB_FLASH_REGS, 0x40022000): SR +0x10 (BSY bit 16), CR +0x14 (PG bit 0, set once
@   at entry, cleared at the stop; LOCK is left as it is).
@ - Errors: OPERR 1, PROGERR 3, WRPERR 4, PGAERR 5, SIZERR 6, PGSERR 7, MISERR 8, FASTERR 9,
@   RDERR 14 (0x43FA). Tested as "any of SR bits 14:1" with one ubfx: bits 2 and 10-13 are
@   reserved and read 0, so this is the same test; OPTVERR (15, option load) and EOP (0, only
@   with EOPIE) are not programming errors and are left out. The error path re-reads SR (the
@   flags are sticky) to store it.
@ Timing: critical path ~10 cycles (tst/bne, ubfx/cbnz, cbnz, two stores) against 81.7 us per
@ double word (327 cycles at the 4 MHz MSI reset clock).
@ Simulated: 11.1 cycles per unit beyond the datasheet time; 64 KiB in 1.034x of 0.669 s.
@
@ Registers in the loop: as f1.s, except that the next unit is r7 (low word) and r10 (high word).

        .syntax unified
        .cpu    cortex-m4
        .thumb
        .include "protocol.s"

        .equ    FLASH_SR,       0x10
        .equ    FLASH_CR,       0x14
        .equ    SR_BSY,         1 << 16
        .equ    SR_ERRORS,      0x43FA  @ documentation: the ubfx below tests bits 14:1
        .equ    CR_PG,          1 << 0
        .equ    UNIT,           8

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
        IWDG_TARGET r8, r0, CB_SCRATCH, r4
        movs    r4, #STATUS_RUNNING
        str     r4, [r0, #CB_STATUS]
        ldr     r4, [r6, #FLASH_CR]
        orr     r4, r4, #CR_PG
        str     r4, [r6, #FLASH_CR]
        b       idle

@ ---- streaming loop (see f1.s for the walk-through) ------------------------------------------
wait:                                   @ until the unit in flight is done
        str.w   r9, [r8]
        ldr     r4, [r6, #FLASH_SR]
        tst.w   r4, #SR_BSY
        bne     wait
        ubfx    r4, r4, #1, #14         @ SR bits 14:1: any error
        cbnz    r4, flash_error
        cbnz    r0, after_unit          @ verify, or nothing loaded
program:                                @ r7:r10 = data for r2, r1 = its slot
        str     r7, [r2]
        str.w   r10, [r2, #4]           @ the double word starts (BSY); the rest overlaps it
        mov     r5, r1
        adds    r1, r1, #UNIT           @ RP of the next unit, with the wrap
        cmp     r1, r11
        bne     1f
        ldr.w   r1, [r12, #CB_RING_START]
1:      str.w   r2, [r12, #CB_DEST]     @ publish: the unit in flight is the next to complete
        str.w   r3, [r12, #CB_REMAINING]
        str.w   r5, [r12, #CB_RP]       @ RP last; releases the previous unit's slot
        adds    r2, r2, #UNIT
        movs    r0, #1                  @ nothing loaded (yet)
        str.w   r9, [r8]                @ IWDG reload, once per unit
        subs    r3, r3, #UNIT
        beq     wait                    @ that was the last unit
        ldr.w   r4, [r12, #CB_WP]
        cmp     r4, r1
        beq     wait                    @ ring empty
        ldr.w   r4, [r12, #CB_ABORT]
        cmp     r4, #0
        bne     wait                    @ the host asks to stop
        ldrd    r7, r10, [r1]           @ load the next unit
        mov     r0, lr                  @ program it at once (or verify first)
        b       wait

flash_error:                            @ the CB already holds the failing unit (published)
        ldr     r4, [r6, #FLASH_SR]
        str.w   r4, [r12, #CB_ERROR_SR]
        movs    r0, #STATUS_FLASH_ERROR
        b       stop

after_unit:                             @ the unit in flight (at r2 - 8, data at r5) is done
        cmp     lr, #0
        beq     2f
        ldr     r4, [r2, #-UNIT]        @ verify: read it back, word by word
        ldr     r7, [r5]
        cmp     r4, r7
        bne     verify_mismatch
        ldr     r4, [r2, #-UNIT + 4]
        ldr     r7, [r5, #4]
        cmp     r4, r7
        bne     verify_mismatch
        ldrd    r7, r10, [r1]           @ reload the next unit's data (r7 was borrowed)
2:      cmp     r0, #1
        bne     program
        str.w   r2, [r12, #CB_DEST]     @ publish: all units before r2 are done
        str.w   r3, [r12, #CB_REMAINING]
        str.w   r1, [r12, #CB_RP]
idle:                                   @ CB is current; nothing in flight
        ldr.w   r0, [r12, #CB_ABORT]
        cbnz    r0, aborted
        cbz     r3, done
idle_spin:                              @ until the host writes data or asks to stop
        str.w   r9, [r8]                @ IWDG reload (or the scratch word)
        ldr.w   r4, [r12, #CB_WP]
        ldr.w   r0, [r12, #CB_ABORT]
        subs    r4, r4, r1
        orrs    r4, r4, r0
        beq     idle_spin               @ ring empty and no abort: one block per turn
        cbnz    r0, aborted
        ldrd    r7, r10, [r1]
        b       program

@ ---- stop -----------------------------------------------------------------------------------
aborted:
        movs    r0, #STATUS_ABORTED
        b       stop
done:
        movs    r0, #STATUS_DONE
        b       stop
verify_mismatch:
        movs    r0, #STATUS_VERIFY
stop:
        ldr     r4, [r6, #FLASH_CR]
        bic     r4, r4, #CR_PG
        str     r4, [r6, #FLASH_CR]
        str.w   r0, [r12, #CB_STATUS]   @ last: a host polling STATUS sees a clean CR
        ldr.w   r1, [r12, #CB_DEST]
        ldr.w   r2, [r12, #CB_REMAINING]
        ldr     r3, [r6, #FLASH_SR]
        bkpt    #0

        .include "crc32.s"
        .include "crc_unit.s"
