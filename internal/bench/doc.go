// Package bench measures byodrop on one machine against the real
// S3-compatible server (versitygw) and the Graph emulator over HTTPS: ingest
// throughput through the real Lambda bootstrap beside a plain streamed copy,
// the bootstrap's peak memory, requests per file in steady state, cold start,
// binary size, and the CSV validator alone. cmd/bench runs it for
// `make bench` and writes docs/benchmarks.md.
package bench
