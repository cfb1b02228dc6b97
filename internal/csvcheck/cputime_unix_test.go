//go:build unix

package csvcheck

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time this process has used, so that benchmarks on a
// busy machine can report throughput per CPU second as well as per second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
