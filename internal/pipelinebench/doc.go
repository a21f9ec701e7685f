// Package pipelinebench holds the benchmark of fenceline's whole per-message
// path without I/O: decode and validate, encode line protocol, evaluate 50
// rules over 1,000 zones — ingest/pipeline with the real decoder and alert
// engine, a writer that only encodes, and dead letters and an outbox that
// accept everything at once. It is the figure the performance targets name
// (≤ 1 µs and ≤ 1 allocation per reading on one core); the per-stage
// benchmarks live next to each stage.
//
//	go test -run '^$' -bench Pipeline -benchmem -cpu 1 ./internal/pipelinebench
//
// The traffic and the deployment are internal/load's, so the benchmark and
// the end-to-end load runs measure the same messages.
package pipelinebench
