package kisstest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// NeedDireWolf is the skip message when the real TNCs cannot run here.
const NeedDireWolf = "direwolf and socat are needed: apt-get install -y direwolf socat (make test installs them as root)"

// Audio1200 runs 1200-baud TNCs at 22050 samples/s: the harness's audio
// loop is not paced in real time, and at 48 kHz the audio of one long frame
// overflows the receiving TNC's UDP socket (nothing arrives).
const Audio1200 = "-r 22050"

// DireWolfPair is two real Dire Wolf TNCs joined by an audio loop
// (../shared/harness/direwolf-pair beside the repository), KISS over TCP on
// 127.0.0.1:PortA and :PortB.
type DireWolfPair struct {
	PortA, PortB int
	Baud         int
	Dir          string // configs and logs (a.log, b.log)
}

// StartDireWolfPair starts a pair at baud with DW_EXTRA=extra, or skips
// the test when direwolf or socat is missing. Cleanup stops it and kills
// the process groups it started (a TNC flushing queued audio can outlive
// SIGTERM).
func StartDireWolfPair(tb testing.TB, baud int, extra string) *DireWolfPair {
	tb.Helper()
	h := harnessPath(tb)
	dir := tb.TempDir()
	pa, pb := freeKISSPorts()
	cmd := exec.Command(h, "start", dir, fmt.Sprint(pa), fmt.Sprint(pb), fmt.Sprint(baud))
	cmd.Env = append(os.Environ(), "DW_EXTRA="+extra)
	out, err := cmd.CombinedOutput()
	tb.Cleanup(func() {
		var pgids []int
		for _, side := range []string{"a", "b"} {
			if b, err := os.ReadFile(filepath.Join(dir, side+".pid")); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
					pgids = append(pgids, pid)
				}
			}
		}
		if out, err := exec.Command(h, "stop", dir).CombinedOutput(); err != nil {
			tb.Logf("direwolf-pair stop: %v\n%s", err, out)
		}
		for _, pg := range pgids {
			_ = syscall.Kill(-pg, syscall.SIGKILL)
		}
	})
	if err != nil {
		a, _ := os.ReadFile(filepath.Join(dir, "a.log"))
		tb.Fatalf("direwolf-pair start: %v\n%s\na.log:\n%s", err, out, a)
	}
	return &DireWolfPair{PortA: pa, PortB: pb, Baud: baud, Dir: dir}
}

// LogTail returns the last lines of both TNCs' logs, for failure reports.
func (p *DireWolfPair) LogTail() string {
	var out strings.Builder
	for _, side := range []string{"a", "b"} {
		b, _ := os.ReadFile(filepath.Join(p.Dir, side+".log"))
		lines := strings.Split(string(b), "\n")
		fmt.Fprintf(&out, "--- %s.log (last 40 lines of %d)\n%s\n", side, len(lines), strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
	return out.String()
}

// harnessPath finds direwolf-pair: ../shared/harness beside the repository
// root (the directory holding go.mod), or skips when the tools are missing.
func harnessPath(tb testing.TB) string {
	tb.Helper()
	for _, tool := range []string{"direwolf", "socat"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skip(NeedDireWolf)
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("cannot find the repository root (go.mod) above the test directory")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "harness", "direwolf-pair")
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("the Dire Wolf harness is missing at %s: check out ../shared beside the repository", p)
	}
	return p
}

// freeKISSPorts picks two KISS ports whose TCP port and UDP audio port
// (+20000, the harness's rule) are free.
func freeKISSPorts() (int, int) {
	free := func(p int) bool {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+20000))
		if err != nil {
			return false
		}
		u.Close()
		return true
	}
	var got []int
	for len(got) < 2 {
		p := 20000 + rand.IntN(20000)
		if free(p) && (len(got) == 0 || got[0] != p) {
			got = append(got, p)
		}
	}
	return got[0], got[1]
}
