"""The benchmark harness: ``l2tpfast bench`` (generator LAC) and ``l2tpfast bench-sink``."""
