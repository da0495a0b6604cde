"""microscope."""
