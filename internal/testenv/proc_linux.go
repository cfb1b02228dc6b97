package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// setProcAttr puts the child in its own process group, so stop reaches its
// children too, and asks the kernel to kill it if this process dies first, so
// an interrupted test run leaves no server behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig) // the group may already be gone
}

// children returns the pids of pid's child processes, read from /proc.
func children(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after
		// the last ')'.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// killChildren kills every child of p's process with SIGKILL, as a crash
// or Lambda's out-of-memory killer does, and returns how many it killed.
func (p *process) killChildren() int {
	if p.cmd.Process == nil {
		return 0
	}
	n := 0
	for _, c := range children(p.cmd.Process.Pid) {
		if syscall.Kill(c, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
