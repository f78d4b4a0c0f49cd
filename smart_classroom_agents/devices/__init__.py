"""The simulated devices of a smart classroom, one module per device kind (docs/DESIGN.md §4).

Each module turns a scripted lesson into the :class:`~smart_classroom_agents.devices.base.Emission`
list that device would send; :mod:`smart_classroom_agents.classroom` merges them in emission order
and stamps event ids and per-device sequence numbers.
"""
