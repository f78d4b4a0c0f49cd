"""The metric definitions of docs/DESIGN.md §7 as pure functions and aggregators (no Faust, no Kafka).

Every aggregator here is order-independent: given the same set of events, in any order, it
yields the same value to the last bit. Deduplication is the caller's (see
:mod:`stream_processors.dedup`); these modules assume each event is offered once.
"""
