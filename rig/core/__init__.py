"""The floor: what every part of zaprig stands on, and which imports nothing else of zaprig.

``errors`` (the one exception family), ``config`` (the rig config models), ``simulation``
(the simulated rig's own config model), ``clock`` (the DAQ's sample clock, real or
virtual), ``events`` (event kinds and sources), ``timeline`` (every trigger and condition
bound as a DAQ sample), ``records`` and ``layout`` (the session
file's contract), ``live_layout`` (``/live``), ``lock`` (one writer per session file),
``optional`` (extras imported only where used), ``stopping`` (signals) and ``vocabulary``
(drops and faults, said one way). The layers are import contracts (pyproject.toml).
"""
