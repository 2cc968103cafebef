@ gangflash streaming flash loader for the STM32F0/F1/F3 flash controller (FPEC, PM0075).
@ Rebuild f1.bin: python -m gangflash.target.loaders.build  (checked by
@ tests/target/loaders/test_reassemble.py). Our own code; facts from shared/reference.
@
@ Protocol: see protocol.s (control block, status codes, registers at the halt). In short: the
@ host fills a ring in SRAM and moves WP; this loop programs one halfword per unit at DEST,
@ advancing RP, DEST and REMAINING in the control block, until REMAINING is 0 (status 1), the
@ host sets ABORT (2), an error flag rises (3) or a read-back differs (4). It keeps running while
@ the ring is empty, so the host never has to halt the core between chunks.
@
@ FPEC facts used (stm32-flash.md): registers at CB_FLASH_REGS (0x40022000; +0x40 for bank 2 of
@ XL parts): SR +0x0C (BSY 0, PGERR 2, WRPRTERR 4, EOP 5), CR +0x10 (PG 0). Halfword stores only.
@ A rejected store (not erased: PGERR; write-protected: WRPRTERR) raises its flag without BSY.
@ EOP is not used (it just accumulates). PG is set once at entry and cleared at the stop.
@
@ Timing: the critical path is from the SR read that shows BSY clear to the store of the next
@ halfword: tst/bne (BSY), tst/bne (errors), cbnz, strh, ~9 cycles. All bookkeeping (publishing
@ the CB, advancing RP with its wrap, the IWDG reload, checking WP and ABORT, loading the next
@ halfword) runs while the unit programs (52.5 us = 420 cycles at the reset clock of 8 MHz).
@ Simulated: 9.0 cycles per unit beyond the datasheet time; 64 KiB in 1.021x of 1.720 s.
@
@ Registers in the loop
@   r0  what to do after the unit in flight: 0 = program r7 at once; 1 = nothing loaded (ring
@       empty, ABORT, or that was the last unit); 2 = r7 loaded but verify first.
@       In the idle loop (nothing in flight): CB_ABORT.
@   r1  RP: slot of the next unit          r2  DEST of the next unit
@   r3  REMAINING from r2 on               r4  SR / scratch
@   r5  slot of the unit in flight (its data, for verify; not yet released to the host)
@   r6  flash registers                    r7  data of the next unit
@   r8  IWDG_KR or &CB_SCRATCH             r9  0xAAAA
@   r11 RING_END                           r12 CB
@   lr  verify mode: 0, or 2 with FLAG_VERIFY

        .syntax unified
        .cpu    cortex-m3
        .thumb
        .include "protocol.s"

        .equ    FLASH_SR,       0x0C
        .equ    FLASH_CR,       0x10
        .equ    SR_BSY,         1 << 0
        .equ    SR_ERRORS,      (1 << 2) | (1 << 4)     @ PGERR | WRPRTERR
        .equ    CR_PG,          1 << 0
        .equ    UNIT,           2

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

@ ---- streaming loop -------------------------------------------------------------------------
wait:                                   @ until the unit in flight is done
        str.w   r9, [r8]                @ IWDG reload (or the scratch word)
        ldr     r4, [r6, #FLASH_SR]
        tst.w   r4, #SR_BSY
        bne     wait
        tst.w   r4, #SR_ERRORS
        bne     flash_error
        cbnz    r0, after_unit          @ verify, or nothing loaded
program:                                @ r7 = data for r2, r1 = its slot
        strh    r7, [r2]                @ the unit starts (BSY); the rest overlaps it
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
        beq     wait                    @ ring empty: decide again once the unit is done
        ldr.w   r4, [r12, #CB_ABORT]
        cmp     r4, #0
        bne     wait                    @ the host asks to stop
        ldrh    r7, [r1]                @ load the next unit
        mov     r0, lr                  @ program it at once (or verify first)
        b       wait

after_unit:                             @ the unit in flight (at r2 - UNIT, data at r5) is done
        cmp     lr, #0
        beq     2f
        ldrh    r4, [r2, #-UNIT]        @ verify: read it back
        ldrh    r7, [r5]
        cmp     r4, r7
        bne     verify_mismatch
        ldrh    r7, [r1]                @ reload the next unit's data (r7 was borrowed)
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
        ldrh    r7, [r1]
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
        b       stop
flash_error:                            @ the CB already holds the failing unit (published)
        str.w   r4, [r12, #CB_ERROR_SR]
        movs    r0, #STATUS_FLASH_ERROR
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
