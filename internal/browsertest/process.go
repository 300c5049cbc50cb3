package browsertest

import (
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startGroup starts cmd in a process group of its own (a browser's helper
// processes join it) and, when t ends, waits up to grace for cmd to exit
// (sending SIGTERM first when term), then kills what is left of the group.
// The channel it returns is closed once cmd has exited.
func startGroup(t testing.TB, cmd *exec.Cmd, term bool, grace time.Duration) (<-chan struct{}, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		if term {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		}
		select {
		case <-exited:
		case <-time.After(grace):
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	return exited, nil
}

// tailBuffer keeps the last max bytes of a process' output lines. It is
// safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) write(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, line...)
	t.b = append(t.b, '\n')
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// tailWriter writes a process' output to a tailBuffer.
type tailWriter struct{ t *tailBuffer }

func (w tailWriter) Write(p []byte) (int, error) {
	w.t.write(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
