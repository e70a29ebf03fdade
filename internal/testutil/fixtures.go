package testutil

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// FixtureCase is one of Katran's packet cases from ../shared/conformance.
type FixtureCase struct {
	ID             string   `json:"id"`
	Suite          string   `json:"suite"`
	Description    string   `json:"description"`
	Program        string   `json:"program"`
	InputHex       string   `json:"input_hex"`
	ExpectedAction string   `json:"expected_action"`
	OutputHex      string   `json:"expected_output_hex"`
	Applicability  string   `json:"applicability"`
	BeyondReasons  []string `json:"beyond_reasons"`
	Input, Output  []byte   `json:"-"`
	Raw            json.RawMessage
}

// Fixtures is the decoded fixture file.
type Fixtures struct {
	Cases []FixtureCase
	Dir   string // the conformance directory, for sibling files
}

// Case finds a case by id ("base/1").
func (f *Fixtures) Case(id string) (FixtureCase, bool) {
	for _, c := range f.Cases {
		if c.ID == id {
			return c, true
		}
	}
	return FixtureCase{}, false
}

// ConformanceDir is ../shared/conformance next to the repository root. The
// data stays outside the repository; CI lays shared/ beside the clone.
func ConformanceDir() string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	return filepath.Join(root, "..", "shared", "conformance")
}

// KatranFixtures loads the fixture file. Missing data skips the test, or
// fails it under CI=true, where shared/ is always present.
func KatranFixtures(t testing.TB) *Fixtures {
	t.Helper()
	dir := ConformanceDir()
	data, err := os.ReadFile(filepath.Join(dir, "katran-fixtures.json"))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("conformance fixtures missing under CI=true: %v", err)
		}
		t.Skipf("conformance fixtures not available: %v", err)
	}
	var file struct {
		Cases []json.RawMessage `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("decode fixtures: %v", err)
	}
	f := &Fixtures{Dir: dir}
	for _, raw := range file.Cases {
		var c FixtureCase
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("decode fixture: %v", err)
		}
		c.Raw = raw
		if c.Input, err = hex.DecodeString(c.InputHex); err != nil {
			t.Fatalf("fixture %s: input_hex: %v", c.ID, err)
		}
		if c.Output, err = hex.DecodeString(c.OutputHex); err != nil {
			t.Fatalf("fixture %s: expected_output_hex: %v", c.ID, err)
		}
		f.Cases = append(f.Cases, c)
	}
	return f
}
