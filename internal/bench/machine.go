package bench

import (
	"bufio"
	"os"
	"runtime"
	"strings"
)

// Machine describes where the figures were measured.
type Machine struct {
	CPU       string // model name from /proc/cpuinfo
	Cores     int    // logical CPUs available
	MemoryMiB int64  // MemTotal
	Go        string
	OS        string // distribution and kernel
}

// ThisMachine reads the machine's description; unknown parts stay empty.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	m.CPU = firstField("/proc/cpuinfo", "model name", ":")
	if kb := firstField("/proc/meminfo", "MemTotal", ":"); kb != "" {
		if n, err := parseKB(kb); err == nil {
			m.MemoryMiB = n >> 20
		}
	}
	distro := strings.Trim(firstField("/etc/os-release", "PRETTY_NAME", "="), `"`)
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	parts := []string{}
	if distro != "" {
		parts = append(parts, distro)
	}
	if k := strings.TrimSpace(string(kernel)); k != "" {
		parts = append(parts, "Linux "+k)
	}
	parts = append(parts, runtime.GOOS+"/"+runtime.GOARCH)
	m.OS = strings.Join(parts, ", ")
	return m
}

// LoadAverage returns the one-minute load average from /proc/loadavg, or
// "" when unknown: other work on the machine shows in it.
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(data)); len(f) > 0 {
		return f[0]
	}
	return ""
}

// firstField returns the value of the first line of file whose name (before
// sep, spaces trimmed) is name.
func firstField(file, name, sep string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), sep)
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
