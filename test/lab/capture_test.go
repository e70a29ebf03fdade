package lab

import (
	"testing"
	"time"
)

func TestParseCaptureTime(t *testing.T) {
	at, rest, err := ParseCaptureTime("1712345678.000123 02:00:00:00:00:02 > 02:00:00:00:00:01, ethertype IPv4 (0x0800), length 74: ...")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1712345678, 123000); !at.Equal(want) {
		t.Errorf("time %s, want %s", at, want)
	}
	if rest != "02:00:00:00:00:02 > 02:00:00:00:00:01, ethertype IPv4 (0x0800), length 74: ..." {
		t.Errorf("rest %q", rest)
	}
	// Lines of an untimed capture, or anything else, are refused.
	for _, line := range []string{"IP 192.0.2.2 > 192.0.2.11: ...", "", "1712345678 x", "1712345678.12 x", "17.abcdef x"} {
		if _, _, err := ParseCaptureTime(line); err == nil {
			t.Errorf("%q: accepted", line)
		}
	}
}
