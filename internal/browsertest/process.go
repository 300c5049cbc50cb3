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
// processes join it); with deathsig, the kernel kills cmd when the test
// binary dies. The channel it returns is closed once cmd has exited; stop
// waits up to grace for cmd to exit (sending SIGTERM first when term), then
// kills what is left of the group.
func startGroup(cmd *exec.Cmd, term, deathsig bool, grace time.Duration) (exited <-chan struct{}, stop func(), err error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if deathsig {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	stop = func() {
		if term {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		}
		select {
		case <-done:
		case <-time.After(grace):
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	return done, stop, nil
}

// startGroupFor is startGroup for a process t owns: stopped when t ends.
func startGroupFor(t testing.TB, cmd *exec.Cmd, term bool, grace time.Duration) (<-chan struct{}, error) {
	exited, stop, err := startGroup(cmd, term, false, grace)
	if err != nil {
		return nil, err
	}
	t.Cleanup(stop)
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
