package modememu

import (
	"bytes"
	"io"
	"testing"

	"go.bug.st/serial"
)

func TestPTYIsRawAndReportsBaud(t *testing.T) {
	p, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := serial.Open(p.SlavePath, &serial.Mode{BaudRate: 9600})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b := p.Baud(); b != 9600 {
		t.Fatalf("Baud = %d, want the 9600 the driver set", b)
	}
	all := make([]byte, 256) // every byte value, including CR, LF, ^C, ^D
	for i := range all {
		all[i] = byte(i)
	}
	if _, err := p.Master.Write(all); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(all))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, all) {
		t.Fatalf("bytes changed on the way through the pty")
	}
}
