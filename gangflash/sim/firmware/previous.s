@ The "previous firmware": what was running in the chip before the debugger arrived.
@
@ The seed bug (st-flash "run_flash_loader(0x08000000) failed") was caused by state that the
@ firmware already in the chip left behind. The simulator puts this program in flash and runs it
@ from reset, so those states arise from real code: an independent watchdog it keeps reloading,
@ SysTick interrupts at 1 kHz, a core asleep in WFI. Which of them it sets up is read from the
@ configuration words at 0x08000040 (patched by the simulator, see firmware.py).
@
@ Build: arm-none-eabi-as -mcpu=cortex-m3 -mthumb previous.s -o previous.o
@        arm-none-eabi-ld -Ttext=0x08000000 -e reset previous.o -o previous.elf
@        arm-none-eabi-objcopy -O binary previous.elf previous.bin
@ tests/sim/test_previous_firmware.py reassembles it and compares with previous.bin.

    .syntax unified
    .cpu cortex-m3
    .thumb

    .equ IWDG_KR,     0x40003000
    .equ SYST_CSR,    0xE000E010
    .equ COUNTER,     0x20000000        @ SysTick handler increments this word
    .equ FLAG_IWDG,   1                 @ start the independent watchdog, reload it in the main loop
    .equ FLAG_SYSTICK, 2                @ SysTick interrupt at the rate in config word 1
    .equ FLAG_SLEEP,  4                 @ sleep in WFI in the main loop

    .text
vectors:
    .word 0x20002000                    @ initial MSP
    .word reset                         @ Reset
    .word default_handler               @ NMI
    .word default_handler               @ HardFault
    .word default_handler               @ MemManage
    .word default_handler               @ BusFault
    .word default_handler               @ UsageFault
    .word 0, 0, 0, 0
    .word default_handler               @ SVCall
    .word default_handler               @ DebugMonitor
    .word 0
    .word default_handler               @ PendSV
    .word systick_handler               @ SysTick

config:
    .word 0                             @ 0x08000040: FLAG_* bits
    .word 7999                          @ 0x08000044: SysTick reload (core clock / 1 kHz - 1)

    .thumb_func
reset:
    ldr   r4, =config
    ldr   r5, [r4]                      @ r5 = flags for the whole run
    tst   r5, #FLAG_IWDG
    beq   1f
    ldr   r0, =IWDG_KR
    ldr   r1, =0x5555                   @ unlock PR and RLR
    str   r1, [r0]
    movs  r1, #2                        @ PR = /16
    str   r1, [r0, #4]
    movs  r1, #64                       @ RLR = 64: 16*65/40 kHz = 26 ms (F1), 32.5 ms (32 kHz LSI)
    str   r1, [r0, #8]
    ldr   r1, =0xCCCC                   @ start
    str   r1, [r0]
1:  tst   r5, #FLAG_SYSTICK
    beq   main_loop
    ldr   r0, =SYST_CSR
    ldr   r1, [r4, #4]
    str   r1, [r0, #4]                  @ LOAD
    movs  r1, #0
    str   r1, [r0, #8]                  @ VAL
    movs  r1, #7                        @ ENABLE | TICKINT | CLKSOURCE (core clock)
    str   r1, [r0]
main_loop:
    tst   r5, #FLAG_IWDG
    beq   2f
    ldr   r0, =IWDG_KR
    ldr   r1, =0xAAAA                   @ reload
    str   r1, [r0]
2:  tst   r5, #FLAG_SLEEP
    beq   main_loop
    wfi
    b     main_loop

    .thumb_func
systick_handler:
    ldr   r0, =COUNTER
    ldr   r1, [r0]
    adds  r1, #1
    str   r1, [r0]
    bx    lr

    .thumb_func
default_handler:
    b     default_handler

    .ltorg
