@ gangflash flash loaders: definitions shared by f1.s, f4.s and l4.s (included, never assembled
@ on its own). The Python side mirrors every constant here in gangflash/target/loaders/__init__.py;
@ tests/target/loaders/test_reassemble.py checks that the two agree.
@
@ ---------------------------------------------------------------------------------------------
@ Blob layout (every loader)
@   +0x00  b.w  program_entry     streaming programmer: r0 = control block (CB)
@   +0x04  b.w  crc_entry         CRC-32 of flash pages:  r0 = CRC job block (CJ)
@   +0x08  bkpt #0                exit breakpoint, for hosts that prefer LR = blob + 8 + 1
@ Both routines end in their own `bkpt #0`; neither returns through LR nor uses a stack (the host
@ may still point SP at a small area, so that a fault has somewhere to stack its frame).
@ Start state set by the host: PC = entry, r0, xPSR = 0x01000000 (Thumb), PRIMASK = 1.
@ Nothing here unlocks the controller, erases, or touches clocks: the host establishes the known
@ state first (unlock, clear stale flags, HSI on, watchdog freeze while halted).
@
@ ---------------------------------------------------------------------------------------------
@ Streaming control block (CB), 32-bit words, 4-aligned, in SRAM
        .equ    CB_WP,          0x00    @ host write pointer (absolute, in the ring); host-owned
        .equ    CB_RP,          0x04    @ loader read pointer (absolute, in the ring); loader-owned
        .equ    CB_RING_START,  0x08    @ first byte of the ring
        .equ    CB_RING_END,    0x0C    @ one past its last byte; size a multiple of 16
        .equ    CB_DEST,        0x10    @ flash address of the next unit (loader advances it)
        .equ    CB_REMAINING,   0x14    @ bytes still to program, a multiple of the unit
        .equ    CB_STATUS,      0x18    @ written by the loader, see STATUS_*
        .equ    CB_FLASH_REGS,  0x1C    @ base of the flash controller's registers
        .equ    CB_FLAGS,       0x20    @ FLAG_* (and F4 PSIZE in bits 9:8)
        .equ    CB_ERROR_SR,    0x24    @ flash SR captured at a flash error (loader writes)
        .equ    CB_ABORT,       0x28    @ host writes non-zero: stop at the next unit boundary
        .equ    CB_SCRATCH,     0x2C    @ loader-owned: IWDG reloads land here when FLAG_IWDG = 0
        .equ    CB_SIZE,        0x30
@
@ Ring: empty when WP == RP. The host never fills the last 8 bytes (so full != empty), writes
@ whole units, the data before WP. The loader wraps RP from RING_END to RING_START.
@ Publication order (loader): DEST, REMAINING, then RP. Every triple the host can read is
@ consistent: "the unit at DEST, whose data sits at RP, is the next to complete; REMAINING
@ bytes from DEST on are not yet known good". A unit's slot is released only after the unit
@ programmed (and verified), never before.

        .equ    FLAG_IWDG,      1 << 0  @ reload the IWDG (KR = 0xAAAA) every unit and while spinning
        .equ    FLAG_VERIFY,    1 << 1  @ read every unit back after programming
        .equ    FLAG_PSIZE_SHIFT, 8     @ F4 only: PSIZE 0 x8, 1 x16, 2 x32 (unit 1 << PSIZE bytes)

        .equ    STATUS_RUNNING, 0
        .equ    STATUS_DONE,    1       @ REMAINING reached 0
        .equ    STATUS_ABORTED, 2       @ CB_ABORT was set
        .equ    STATUS_FLASH_ERROR, 3   @ an error flag rose: CB_ERROR_SR holds SR, DEST the unit
        .equ    STATUS_VERIFY,  4       @ the unit at DEST read back different from its data
        .equ    STATUS_BAD_REQUEST, 5   @ F4: PSIZE 3 (x64 needs VPP); nothing was touched
@
@ On stop (any status) the loader clears CR.PG, writes CB_STATUS last, then halts at `bkpt #0`
@ with r0 = STATUS, r1 = DEST (failing or next address), r2 = REMAINING, r3 = flash SR now.
@
@ ---------------------------------------------------------------------------------------------
@ CRC job block (CJ), 32-bit words, 4-aligned, in SRAM; only the loader's scratch word is written
        .equ    CJ_ADDRESS,     0x00    @ first byte of the first page (4-aligned)
        .equ    CJ_PAGE_SIZE,   0x04    @ bytes per page: a non-zero multiple of 4
        .equ    CJ_COUNT,       0x08    @ number of pages (0 allowed)
        .equ    CJ_FLAGS,       0x0C    @ FLAG_IWDG: reload the IWDG before every page
        .equ    CJ_TABLE,       0x10    @ 1 KiB of SRAM (4-aligned) for the byte table
        .equ    CJ_OUT,         0x14    @ results: COUNT words, word i = zlib.crc32(page i)
        .equ    CJ_SCRATCH,     0x18    @ loader-owned: IWDG reloads land here when FLAG_IWDG = 0
        .equ    CJ_SIZE,        0x1C
@ Ends at `bkpt #0` with r0 = 0.

        .equ    IWDG_KR,        0x40003000      @ F1, F4 and L4
        .equ    IWDG_RELOAD,    0xAAAA
        .equ    CRC32_POLY,     0xEDB88320      @ zlib CRC-32, reflected

@ The entry table every blob starts with.
        .macro  ENTRY_TABLE
        b.w     program_entry           @ +0
        b.w     crc_entry               @ +4
        bkpt    #0                      @ +8
        bkpt    #0                      @ +10 (padding)
        b.w     crc_unit_entry          @ +12
        .endm

@ rd := IWDG_KR when bit 0 of rflags is set, else the scratch word at rbase + scratch: every
@ reload is then one unconditional `str r9, [rd]` (r9 = 0xAAAA), no flag test in the loops.
@ Clobbers rflags.
        .macro  IWDG_TARGET rd, rbase, scratch, rflags
        add.w   \rd, \rbase, #\scratch
        lsls    \rflags, \rflags, #31
        beq     1001f
        movw    \rd, #:lower16:IWDG_KR
        movt    \rd, #:upper16:IWDG_KR
1001:
        movw    r9, #IWDG_RELOAD
        .endm
