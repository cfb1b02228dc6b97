package testenv

import (
	"os/exec"
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
