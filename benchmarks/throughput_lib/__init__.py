"""What benchmarks/throughput.py is built from: FLOP counts, cases, the runner, profiles, tables."""
