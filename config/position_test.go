package config

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestScanPositions(t *testing.T) {
	doc := "\uFEFF" + `# comment with [[vip]] and key = 1
top = 1 # trailing [x]
"quoted.key" = 'literal # not a comment'
dotted . inner = """
multi-line with [[vip]]
fake = 2 and \"""
"""
lit = '''
[[vip]] inside literal '''
when = 1979-05-27 07:32:00
nested = [[1, 2], [3,
  4]]

[[vip]]
address = "a"
  [[vip.real]]
  address = "r00"
  [[vip.real]]
  address = "r01"
  [vip.real.health]
  port = 1
[[vip]]
inline = { a = 1, b.c = [ { d = 2 } ] }
real = [
  { address = "r10" }, # comment
  { address = "r11" },
]
[tbl . "sub key"]
x = 1` + "\r\ny = 2\r\n"

	if _, err := toml.Decode(doc, new(map[string]any)); err != nil {
		t.Fatalf("test document is not valid TOML: %v", err)
	}
	got := scanPositions(doc)
	want := map[string]position{
		"top":                        {2, 1},
		`"quoted.key"`:               {3, 1},
		"dotted":                     {4, 1},
		"dotted.inner":               {4, 1},
		"lit":                        {8, 1},
		"when":                       {10, 1},
		"nested":                     {11, 1},
		"nested[0]":                  {11, 11},
		"nested[0][1]":               {11, 15},
		"nested[1]":                  {11, 19},
		"nested[1][1]":               {12, 3},
		"vip":                        {14, 1},
		"vip[0]":                     {14, 1},
		"vip[0].address":             {15, 1},
		"vip[0].real":                {16, 3},
		"vip[0].real[0]":             {16, 3},
		"vip[0].real[0].address":     {17, 3},
		"vip[0].real[1]":             {18, 3},
		"vip[0].real[1].address":     {19, 3},
		"vip[0].real[1].health":      {20, 3},
		"vip[0].real[1].health.port": {21, 3},
		"vip[1]":                     {22, 1},
		"vip[1].inline":              {23, 1},
		"vip[1].inline.a":            {23, 12},
		"vip[1].inline.b.c":          {23, 19},
		"vip[1].inline.b.c[0]":       {23, 27},
		"vip[1].inline.b.c[0].d":     {23, 29},
		"vip[1].real":                {24, 1},
		"vip[1].real[0]":             {25, 3},
		"vip[1].real[0].address":     {25, 5},
		"vip[1].real[1]":             {26, 3},
		"vip[1].real[1].address":     {26, 5},
		`tbl."sub key"`:              {28, 1},
		`tbl."sub key".x`:            {29, 1},
		`tbl."sub key".y`:            {30, 1},
	}
	for path, pos := range want {
		if got[path] != pos {
			t.Errorf("%s at %v, want %v", path, got[path], pos)
		}
	}
	// Nothing inside strings or comments is taken for a key.
	for _, path := range []string{"fake", "vip[2]", "x", "key"} {
		if _, ok := got[path]; ok {
			t.Errorf("%s recorded from inside a string or comment", path)
		}
	}
}

func TestPositionLookupFallsBackToTable(t *testing.T) {
	pos := scanPositions("a = 1\n[[vip]]\nport = 1\n")
	for path, want := range map[string]position{
		"vip[0].address":        {2, 1},
		"vip[0].real[3].weight": {2, 1},
		"nothing":               {},
	} {
		if got := pos.lookup(path); got != want {
			t.Errorf("lookup(%s) = %v, want %v", path, got, want)
		}
	}
}

// scannedKeys is the set of key paths the scanner saw, indices removed, in
// the library's Key.String form (bare keys only).
func scannedKeys(doc string) []string {
	var keys []string
	for path := range scanPositions(doc) {
		keys = append(keys, stripIndices(path))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// libraryKeys is the set of keys the library parsed, if all are bare.
func libraryKeys(md toml.MetaData) ([]string, bool) {
	set := map[string]bool{}
	for _, k := range md.Keys() {
		for _, part := range k {
			if !isBareKey(part) {
				return nil, false
			}
		}
		// The scanner also records the implicit tables of dotted keys.
		for i := 1; i <= len(k); i++ {
			set[k[:i].String()] = true
		}
	}
	return slices.Sorted(maps.Keys(set)), true
}

// The scanner agrees with the library about which keys a document has.
func TestScannerAgreesWithLibrary(t *testing.T) {
	for _, name := range []string{etcFile, "testdata/full.toml"} {
		doc := string(readFile(t, name))
		checkScannerAgrees(t, uncommentExamples([]byte(doc)))
	}
	tricky := []string{
		`a = """x"""""` + "\nb = '''y'''''\n" + `c = "\"" # [[z]]` + "\n[[d]]\n",
		"t = {\n  a = 1, # comment\n  b = { c = [1, {d = 2}] },\n}\n[[x.y]]\n[x.y.z]\nw = 1\n[[x.y]]\n[[x.y.q]]\n",
		"d1 = 1979-05-27 07:32:00\nd2 = 1979-05-27\nd3 = 07:32\n[s]\nv = [\n\n1,\n# c\n2,\n]\n",
		"a.b.c = 1\na.d = 2\n[e]\nf.g = { h.i = 3 }\n",
		"[[a]]\n[[a.b]]\n[[a.b.c]]\n[[a]]\n[[a.b]]\nx = 1\n[[a.b]]\n",
	}
	for _, doc := range tricky {
		if _, err := toml.Decode(doc, new(map[string]any)); err != nil {
			t.Fatalf("not valid TOML: %v\n%s", err, doc)
		}
		checkScannerAgrees(t, doc)
	}
}

func checkScannerAgrees(t *testing.T, doc string) {
	t.Helper()
	var tree map[string]any
	md, err := toml.Decode(doc, &tree)
	if err != nil {
		return
	}
	lib, ok := libraryKeys(md)
	if !ok {
		return
	}
	if got := scannedKeys(doc); !slices.Equal(got, lib) {
		t.Fatalf("scanner keys differ from the library's for\n%s\nscanner: %s\nlibrary: %s",
			doc, strings.Join(got, " "), strings.Join(lib, " "))
	}
}
