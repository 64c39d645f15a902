package main

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// session is an interactive subcommand (`tern chat`) run as a person
// would: lines typed on its stdin, its output read line by line.
type session struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// interactive starts `tern args... --data <d's data>`.
func (d *daemon) interactive(args ...string) *session {
	d.t.Helper()
	cmd := exec.Command(ternBin, append(args, "--data", d.data)...)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	s := &session{t: d.t, cmd: cmd, in: in, lines: make(chan string, 200)}
	d.t.Cleanup(func() { cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	return s
}

// typeLine types a line and presses Enter.
func (s *session) typeLine(text string) { io.WriteString(s.in, text+"\n") }

// expect waits for a printed line containing every one of want.
func (s *session) expect(want ...string) string {
	s.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				s.t.Fatalf("the command ended before printing a line with %q", want)
			}
			all := true
			for _, w := range want {
				all = all && strings.Contains(l, w)
			}
			if all {
				return l
			}
		case <-timeout:
			s.t.Fatalf("the command never printed a line with %q", want)
		}
	}
}

// quit presses Ctrl-D and checks the command exits cleanly.
func (s *session) quit() {
	s.t.Helper()
	s.in.Close()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			s.t.Errorf("the command exited with %v after Ctrl-D", err)
		}
	case <-time.After(10 * time.Second):
		s.t.Error("the command did not exit on Ctrl-D")
	}
}
