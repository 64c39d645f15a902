package airtime

import "testing"

// FuzzTimeOnAir checks that any parameters give a result without panicking,
// that valid ones give a positive time that grows with the payload, and
// that invalid ones give 0.
func FuzzTimeOnAir(f *testing.F) {
	f.Add(7, 125000, 1, 8, false, true, 10)
	f.Add(12, 125000, 4, 0, true, false, 255)
	f.Add(5, 500000, 2, 6, false, true, 0)
	f.Add(-3, 0, 9, 1<<20, true, true, -5)
	f.Fuzz(func(t *testing.T, sf, bw, cr, pre int, ih, crc bool, n int) {
		p := Params{SF: sf, BandwidthHz: bw, CR: cr, Preamble: pre, ImplicitHeader: ih, CRC: crc}
		d := p.TimeOnAir(n)
		if p.Validate() != nil {
			if d != 0 {
				t.Fatalf("invalid %+v gave %v", p, d)
			}
			return
		}
		if n < 0 || n > 1000 {
			return
		}
		if d <= 0 || p.TimeOnAir(n+1) < d {
			t.Fatalf("%+v: ToA(%d)=%v ToA(%d)=%v", p, n, d, n+1, p.TimeOnAir(n+1))
		}
	})
}
