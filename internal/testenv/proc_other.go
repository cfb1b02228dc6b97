//go:build !linux

package testenv

import (
	"os/exec"
	"syscall"
)

// setProcAttr does nothing here: Lambda and CI run Linux, and other systems
// only need the child itself to stop.
func setProcAttr(cmd *exec.Cmd) {}

func signalGroup(cmd *exec.Cmd, _ syscall.Signal) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

// killChildren is not available here: it reads Linux's /proc.
func (p *process) killChildren() int { return 0 }
