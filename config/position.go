package config

import (
	"strconv"
	"strings"
)

// BurntSushi/toml v1.6.0 reports positions only inside its ParseError (for
// syntax errors and for errors returned by a decoder hook). MetaData keeps
// key positions private, and keys them without array indices, so every
// [[vip]] element would share the position of the last one. This scanner
// fills the gap: it walks a document the library has already accepted and
// records where each key path ("vip[2].real[0].weight") is written.

// position is a 1-based line and byte column.
type position struct {
	line, col int
}

// positions maps key paths, as joinPath builds them, to where they are
// written: a key's first character, a table header's '[', or an array
// element's first character.
type positions map[string]position

// lookup finds path or, failing that, its closest recorded ancestor, so
// that a problem with a missing key points at its table.
func (p positions) lookup(path string) position {
	for {
		if pos, ok := p[path]; ok {
			return pos
		}
		if path == "" {
			return position{}
		}
		path = parentPath(path)
	}
}

// joinPath appends a key to a path; keys that are not bare TOML keys are
// quoted so the path stays unambiguous.
func joinPath(parent, key string) string {
	k := key
	if !isBareKey(key) {
		k = strconv.Quote(key)
	}
	if parent == "" {
		return k
	}
	return parent + "." + k
}

// indexPath appends an array index to a path.
func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// parentPath strips the last key or index. Only paths of bare keys (all the
// schema's) are split exactly; anything else degrades to a shorter
// lookup, never a wrong one.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isBareKeyChar(k[i]) {
			return false
		}
	}
	return true
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// scanPositions indexes the key paths of a valid TOML document. On input
// the library rejected it may record nonsense, but it always terminates.
func scanPositions(src string) positions {
	s := &scanner{src: src, out: positions{}, arrays: map[string]int{}}
	s.lineStarts = append(s.lineStarts, 0)
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			s.lineStarts = append(s.lineStarts, i+1)
		}
	}
	s.document()
	return s.out
}

type scanner struct {
	src        string
	i          int
	lineStarts []int
	out        positions
	// arrays counts the elements of each array of tables so far; the
	// key includes the indices of enclosing arrays ("vip[1].real").
	arrays map[string]int
}

func (s *scanner) peek(off int) byte {
	if s.i+off < len(s.src) {
		return s.src[s.i+off]
	}
	return 0
}

func (s *scanner) eof() bool { return s.i >= len(s.src) }

// mark records offset as the position of path unless it has one already.
func (s *scanner) mark(path string, offset int) {
	if _, ok := s.out[path]; ok {
		return
	}
	// Binary search for the line holding offset.
	lo, hi := 0, len(s.lineStarts)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if s.lineStarts[mid] <= offset {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	s.out[path] = position{line: lo + 1, col: offset - s.lineStarts[lo] + 1}
}

func (s *scanner) document() {
	if strings.HasPrefix(s.src, "\uFEFF") {
		s.i = len("\uFEFF")
	}
	table := ""
	for {
		s.skipBlank()
		if s.eof() {
			return
		}
		start := s.i
		if s.peek(0) == '[' {
			table = s.header()
		} else {
			s.keyValue(table)
		}
		if s.i == start {
			s.i++ // never stall on input the library would have rejected
		}
	}
}

// skipSpace skips spaces and tabs.
func (s *scanner) skipSpace() {
	for !s.eof() && (s.peek(0) == ' ' || s.peek(0) == '\t') {
		s.i++
	}
}

// skipBlank skips whitespace, newlines and comments.
func (s *scanner) skipBlank() {
	for !s.eof() {
		switch s.peek(0) {
		case ' ', '\t', '\r', '\n':
			s.i++
		case '#':
			for !s.eof() && s.peek(0) != '\n' {
				s.i++
			}
		default:
			return
		}
	}
}

// header reads [a.b] or [[a.b]] and returns the table's path.
func (s *scanner) header() string {
	start := s.i
	array := s.peek(1) == '['
	if array {
		s.i += 2
	} else {
		s.i++
	}
	keys, _ := s.keys()
	s.skipSpace()
	for n := 0; n < 2 && s.peek(0) == ']'; n++ {
		s.i++
	}
	path := ""
	for i, k := range keys {
		path = joinPath(path, k)
		switch n, seen := s.arrays[path]; {
		case i == len(keys)-1 && array:
			s.mark(path, start)
			s.arrays[path] = n + 1
			path = indexPath(path, n)
		case seen && n > 0:
			// [a.b] below [[a]] means the last element of a.
			path = indexPath(path, n-1)
		}
		s.mark(path, start)
	}
	return path
}

// keys reads a dotted key and returns its parts and the offset of the first.
func (s *scanner) keys() ([]string, int) {
	var parts []string
	s.skipSpace()
	start := s.i
	for {
		s.skipSpace()
		k, ok := s.key()
		if !ok {
			return parts, start
		}
		parts = append(parts, k)
		s.skipSpace()
		if s.peek(0) != '.' {
			return parts, start
		}
		s.i++
	}
}

// key reads one bare or quoted key.
func (s *scanner) key() (string, bool) {
	switch s.peek(0) {
	case '"':
		start := s.i
		s.basicString()
		raw := s.src[start:s.i]
		if k, err := strconv.Unquote(raw); err == nil {
			return k, true
		}
		return strings.Trim(raw, `"`), true
	case '\'':
		start := s.i
		s.literalString()
		return strings.Trim(s.src[start:s.i], "'"), true
	}
	start := s.i
	for !s.eof() && isBareKeyChar(s.peek(0)) {
		s.i++
	}
	return s.src[start:s.i], s.i > start
}

// keyValue reads key = value in the table at path base.
func (s *scanner) keyValue(base string) {
	keys, start := s.keys()
	if len(keys) == 0 {
		for !s.eof() && s.peek(0) != '\n' {
			s.i++
		}
		return
	}
	path := base
	for _, k := range keys {
		path = joinPath(path, k)
		s.mark(path, start)
	}
	s.skipSpace()
	if s.peek(0) == '=' {
		s.i++
	}
	s.skipSpace()
	s.value(path)
}

func (s *scanner) value(path string) {
	switch s.peek(0) {
	case '"':
		s.basicString()
	case '\'':
		s.literalString()
	case '[':
		s.array(path)
	case '{':
		s.inlineTable(path)
	default:
		s.scalar()
	}
}

func (s *scanner) array(path string) {
	s.i++ // [
	for n := 0; ; {
		s.skipBlank()
		switch {
		case s.eof():
			return
		case s.peek(0) == ']':
			s.i++
			return
		case s.peek(0) == ',':
			s.i++
			continue
		}
		elem := indexPath(path, n)
		n++
		s.mark(elem, s.i)
		start := s.i
		s.value(elem)
		if s.i == start {
			s.i++
		}
	}
}

func (s *scanner) inlineTable(path string) {
	s.i++ // {
	for {
		s.skipBlank() // TOML 1.1 allows newlines and comments here
		switch {
		case s.eof():
			return
		case s.peek(0) == '}':
			s.i++
			return
		case s.peek(0) == ',':
			s.i++
			continue
		}
		start := s.i
		s.keyValue(path)
		if s.i == start {
			s.i++
		}
	}
}

// scalar skips a number, boolean or date-time.
func (s *scanner) scalar() {
	start := s.i
	for !s.eof() && !strings.ContainsRune(",]}# \t\r\n", rune(s.peek(0))) {
		s.i++
	}
	// A local date-time may separate date and time with a space.
	if s.i-start == len("2006-01-02") && s.src[start+4] == '-' && s.peek(0) == ' ' &&
		s.peek(1) >= '0' && s.peek(1) <= '9' {
		s.i++
		s.scalar()
	}
}

// basicString skips "..." or """...""".
func (s *scanner) basicString() {
	if strings.HasPrefix(s.src[s.i:], `"""`) {
		s.i += 3
		for !s.eof() {
			switch {
			case s.peek(0) == '\\':
				s.i += 2
			case strings.HasPrefix(s.src[s.i:], `"""`):
				// The string ends with the run of quotes this one starts,
				// its last three closing it: """a""""" is `a""`. Runs of
				// six or more are errors to the library, except after a
				// backslash, where it takes them whole (`"""\""""""` is
				// `"""`), so the whole run is what it reads either way.
				for s.peek(0) == '"' {
					s.i++
				}
				return
			default:
				s.i++
			}
		}
		s.i = min(s.i, len(s.src))
		return
	}
	s.i++
	for !s.eof() && s.peek(0) != '"' && s.peek(0) != '\n' {
		if s.peek(0) == '\\' {
			s.i++
		}
		s.i++
	}
	s.i = min(s.i+1, len(s.src))
}

// literalString skips '...' or ”'...”'.
func (s *scanner) literalString() {
	if strings.HasPrefix(s.src[s.i:], `'''`) {
		s.i += 3
		end := strings.Index(s.src[s.i:], `'''`)
		if end < 0 {
			s.i = len(s.src)
			return
		}
		s.i += end + 3
		for n := 0; n < 2 && s.peek(0) == '\''; n++ {
			s.i++
		}
		return
	}
	s.i++
	for !s.eof() && s.peek(0) != '\'' && s.peek(0) != '\n' {
		s.i++
	}
	s.i = min(s.i+1, len(s.src))
}
