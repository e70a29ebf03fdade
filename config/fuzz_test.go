package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func addSeeds(f *testing.F) {
	for _, name := range []string{etcFile, "testdata/full.toml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add([]byte(uncommentExamples(data)))
	}
	f.Add([]byte("interface = \"eth0\"\n[[vip]]\naddress = \"2001:db8::1\"\nport = 0\nreal = [{ address = \"10.0.0.1\", weight = -1 }]\n"))
	f.Add([]byte("interface = 'x'\na.b.c = \"\"\"q\"\"\"\"\"\n[[t]]\n[[t.u]]\n[t.u.v]\nw = [[{}], {x = 1}]\n"))
	f.Add([]byte("interface = \"eth0\"\r\nlru_size = 1\r\nforwarding_cores = [1, 1]\r\n"))
}

// Parse never panics, reports every problem as a FieldError of the given
// file, and whatever it accepts validates again as it is.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned both a Config and an error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("error is not a non-empty *ValidationError: %v", err)
			}
			for _, fe := range ve.Errors {
				if fe.File != "fuzz.toml" || !strings.HasPrefix(fe.Error(), "fuzz.toml") {
					t.Fatalf("problem without the file name: %q", fe.Error())
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not re-validate:\n%v", err)
		}
		n := c.Clone()
		if !n.Equal(c) {
			t.Fatal("Clone differs from the original")
		}
		if err := n.Validate(); err != nil {
			t.Fatalf("clone does not validate:\n%v", err)
		}
	})
}

// The position scanner never panics and, on documents the library
// accepts, finds the same keys.
func FuzzScanPositions(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		doc := string(data)
		scanPositions(doc)
		checkScannerAgrees(t, doc)
	})
}
