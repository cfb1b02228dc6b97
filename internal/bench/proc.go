package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FindProcess returns the id of the one running process whose executable
// is exe (an absolute path). The bench builds each bootstrap into its own
// directory, so its path names exactly the process the runtime emulator
// started.
func FindProcess(exe string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("finding %s: %w", exe, err)
	}
	var found []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && target == exe {
			found = append(found, pid)
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("no running process of %s", exe)
	case 1:
		return found[0], nil
	}
	return 0, fmt.Errorf("%d processes of %s (%v), want one", len(found), exe, found)
}

// Memory is what /proc/<pid>/status says of a process's resident memory.
type Memory struct {
	Peak    int64 // VmHWM: the high-water mark of the resident set, bytes
	Current int64 // VmRSS, bytes
}

// ReadMemory reads a process's resident memory figures.
func ReadMemory(pid int) (Memory, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return Memory{}, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch name {
		case "VmHWM":
			m.Peak, err = parseKB(value)
		case "VmRSS":
			m.Current, err = parseKB(value)
		}
		if err != nil {
			return Memory{}, fmt.Errorf("memory of process %d: %s: %w", pid, name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return Memory{}, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	if m.Peak == 0 {
		return Memory{}, fmt.Errorf("memory of process %d: no VmHWM in its status", pid)
	}
	return m, nil
}

// parseKB reads a status value such as "  51234 kB".
func parseKB(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("unexpected value %q", s)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	return n << 10, err
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// ProcessCPU returns the user and system CPU time a process has used so
// far, all its threads included (10 ms resolution).
func ProcessCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("CPU time of process %d: %w", pid, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, the 12th and 13th after it.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("CPU time of process %d: unexpected stat %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("CPU time of process %d: unexpected stat %q", pid, s)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("CPU time of process %d: unexpected stat %q", pid, s)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// SelfCPU returns the user and system CPU time this process has used.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
