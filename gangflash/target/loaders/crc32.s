@ gangflash flash loaders: the CRC-32 routine shared by f1.s, f4.s and l4.s (included at the end
@ of each; never assembled on its own). Needs the definitions of protocol.s.
@
@ crc_entry: r0 = CRC job block (CJ_* in protocol.s). For each of CJ_COUNT pages of CJ_PAGE_SIZE
@ bytes from CJ_ADDRESS, stores zlib's CRC-32 of the page (reflected polynomial 0xEDB88320, init
@ 0xFFFFFFFF, final XOR 0xFFFFFFFF: Python's zlib.crc32(page)) in the next word of CJ_OUT.
@ Reloads the IWDG before every page when CJ_FLAGS bit 0 is set. Halts at `bkpt #0`, r0 = 0.
@
@ Method: a 256-entry byte table built in CJ_TABLE at every call (~8k cycles), then one word
@ per iteration: crc ^= word, then four table steps crc = T[crc & 0xFF] ^ (crc >> 8) (the word
@ is little-endian, so XORing it whole equals XORing each byte just before its step). About
@ 23 cycles per word on a Cortex-M3 at 0 wait states (~6 cycles per byte): 64 KiB in ~24 ms at
@ 8 MHz. A bit-serial loop would cost ~10x that.
@
@ Registers: r0 CJ, r1 read address, r2 page size, r3 pages left, r4 table, r5 output pointer,
@ r6 scratch, r7 crc, r8 IWDG target, r9 0xAAAA, r12 end of the page.

crc_entry:
        ldr     r4, [r0, #CJ_TABLE]
        movw    r2, #:lower16:CRC32_POLY
        movt    r2, #:upper16:CRC32_POLY
        movs    r1, #0                  @ n = 0..255
crc_table_entry:
        mov     r3, r1                  @ c = n
        movs    r5, #8
crc_table_bit:
        lsrs    r3, r3, #1              @ c >>= 1, the bit shifted out in C
        it      cs
        eorcs   r3, r3, r2              @ ... and the polynomial folded in when it was 1
        subs    r5, #1
        bne     crc_table_bit
        str.w   r3, [r4, r1, lsl #2]
        adds    r1, #1
        cmp     r1, #256
        bne     crc_table_entry

        ldr     r1, [r0, #CJ_FLAGS]
        IWDG_TARGET r8, r0, CJ_SCRATCH, r1
        ldr     r1, [r0, #CJ_ADDRESS]
        ldr     r2, [r0, #CJ_PAGE_SIZE]
        ldr     r3, [r0, #CJ_COUNT]
        ldr     r5, [r0, #CJ_OUT]
crc_page:
        cbz     r3, crc_done
        str.w   r9, [r8]                @ IWDG reload (or the scratch word)
        mov.w   r7, #0xFFFFFFFF         @ init
        add.w   r12, r1, r2
crc_word:
        ldr     r6, [r1], #4
        eors    r7, r6
        .rept   4
        uxtb    r6, r7
        ldr.w   r6, [r4, r6, lsl #2]
        eor.w   r7, r6, r7, lsr #8
        .endr
        cmp     r1, r12
        bne     crc_word
        mvns    r7, r7                  @ final XOR
        str     r7, [r5], #4
        subs    r3, #1
        b       crc_page
crc_done:
        movs    r0, #0
        bkpt    #0
