package main

import (
	"fmt"
	"strings"

	"rsc.io/qr"
)

// renderQR draws text as a QR code with Unicode half blocks: two QR rows per
// terminal line, dark on light, with the four-module quiet zone scanners
// need. rsc.io/qr is used rather than a hand-written encoder: Reed-Solomon,
// version selection and masking are easy to get subtly wrong.
func renderQR(text string) (string, error) {
	if text == "" {
		return "", errNoQR
	}
	code, err := qr.Encode(text, qr.L)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errNoQR, err)
	}
	const quiet = 4
	n := code.Size
	dark := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		return x >= 0 && y >= 0 && x < n && y < n && code.Black(x, y)
	}
	var b strings.Builder
	for y := 0; y < n+2*quiet; y += 2 {
		for x := 0; x < n+2*quiet; x++ {
			top, bottom := dark(x, y), dark(x, y+1)
			switch {
			case top && bottom:
				b.WriteRune(' ')
			case top:
				b.WriteRune('▄')
			case bottom:
				b.WriteRune('▀')
			default:
				b.WriteRune('█')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
