"""Assemble the flash loaders: ``python -m gangflash.target.loaders.build`` rewrites the ``.bin``
files beside their ``.s`` sources; ``--check`` only compares (exit 1 on a difference).

Needs GNU binutils for ARM (``arm-none-eabi-as``, ``-ld``, ``-objcopy``; Debian package
``binutils-arm-none-eabi``, installed by ``./dev.sh``). Each source is assembled, linked at
address 0 (so no relocation is left for ``objcopy -O binary`` to drop silently) and its ``.text``
extracted. The output depends only on the sources and the binutils version's encodings, which
are fixed by the architecture, so the committed bytes are reproducible.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = {"f1": "cortex-m3", "f4": "cortex-m4", "l4": "cortex-m4"}
TOOLS = ("arm-none-eabi-as", "arm-none-eabi-ld", "arm-none-eabi-objcopy", "arm-none-eabi-nm")


class ToolsMissing(RuntimeError):
    pass


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def assemble(name: str, source_dir: pathlib.Path = HERE) -> tuple[bytes, dict[str, int]]:
    """Machine code of ``<name>.s`` and its symbols (label -> offset in the blob)."""
    missing = missing_tools()
    if missing:
        raise ToolsMissing(f"missing {', '.join(missing)} (apt-get install binutils-arm-none-eabi)")
    source = source_dir / f"{name}.s"
    with tempfile.TemporaryDirectory() as tmp:
        obj, elf, binary = (pathlib.Path(tmp, f"{name}{ext}") for ext in (".o", ".elf", ".bin"))
        _run(["arm-none-eabi-as", f"-mcpu={SOURCES[name]}", "-mthumb", "-I", str(source_dir),
              "-o", str(obj), str(source)])
        _run(["arm-none-eabi-ld", "-nostdlib", "--no-warn-rwx-segments", "-Ttext=0", "-e", "0",
              "-o", str(elf), str(obj)])
        _run(["arm-none-eabi-objcopy", "-O", "binary", "-j", ".text", str(elf), str(binary)])
        symbols: dict[str, int] = {}
        for line in _run(["arm-none-eabi-nm", str(elf)]).splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tT":
                symbols[parts[2]] = int(parts[0], 16) & ~1
        return binary.read_bytes(), symbols


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed .bin files only")
    args = parser.parse_args(argv)
    status = 0
    for name in SOURCES:
        code, _ = assemble(name)
        target = HERE / f"{name}.bin"
        if args.check:
            same = target.exists() and target.read_bytes() == code
            print(f"{name}: {len(code)} bytes, {'matches' if same else 'DIFFERS from'} {target.name}")
            status |= not same
        else:
            target.write_bytes(code)
            print(f"{name}: {len(code)} bytes -> {target}")
    return status


if __name__ == "__main__":
    sys.exit(main())
