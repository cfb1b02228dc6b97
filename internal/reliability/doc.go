// Package reliability holds byodrop's end-to-end reliability and security
// suite. It has no code of its own: its tests drive the real ingest and
// finalize handlers against a real S3-compatible server (versitygw) and the
// Graph emulator, and measure what happens under faults, deadlines, load,
// bad input and hostile keys:
//
//   - TestFaultMatrix: every Graph operation under every fault, and the S3
//     faults, each with the outcome it must have (retried to success within
//     the invocation, or an error for Lambda's retry that then succeeds),
//     printed as a table;
//   - TestDeadlineStopsCleanly: an invocation out of time releases its claim
//     and reports the failure before its deadline;
//   - TestSoak: many objects, duplicated and reordered events, random faults,
//     concurrent invocations and Lambda-style retries, then the finalizer;
//     short in `make test`, long with -tags soak (`make soak`);
//   - TestCSVCorpusThroughIngest and TestKeyCases: the bad-input corpus
//     through the real ingest;
//   - the security tests: no path injection, no secret or token in any
//     output, no plain-http endpoint off loopback.
package reliability
