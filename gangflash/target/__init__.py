"""See the package docstring of gangflash."""
