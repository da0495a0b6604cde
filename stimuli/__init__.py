"""Stimuli: models, closed-loop feedback laws, protocols and renderers."""
