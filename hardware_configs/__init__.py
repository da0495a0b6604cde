"""The rig configs zaprig ships (``*.toml``; ``simulated.toml`` is the default).

This folder is a package only so that the configs travel inside the wheel as package data
and are found the same way from a source checkout, an editable install and an installed
wheel (``importlib.resources.files("hardware_configs")``, see ``rig.core.config.CONFIG_DIR``).
It holds no code.
"""
